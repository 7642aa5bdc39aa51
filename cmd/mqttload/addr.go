package main

import (
	"fmt"
	"net"
	"strings"
)

// brokerURL turns -addr into the tcp:// URL paho wants, refusing anything that is not
// a loopback address unless allowRemote is set: a load tool pointed at someone
// else's broker by a typo is a denial of service.
func brokerURL(addr string, allowRemote bool) (string, error) {
	hostport := addr
	if i := strings.Index(addr, "://"); i >= 0 {
		scheme := addr[:i]
		if scheme != "tcp" && scheme != "mqtt" {
			return "", fmt.Errorf("address %q: only tcp:// is supported", addr)
		}
		hostport = addr[i+3:]
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", addr, err)
	}
	if port == "" {
		return "", fmt.Errorf("address %q: missing port", addr)
	}
	if !allowRemote && !isLoopback(host) {
		return "", fmt.Errorf("address %q is not a loopback address (use -allow-remote to load another host)", addr)
	}
	return "tcp://" + net.JoinHostPort(host, port), nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
