package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// errBadAddr is wrapped by every refusal of an address flag (-addr, -pub-addr,
// -sub-addr).
var errBadAddr = errors.New("bad broker address")

// brokerURL turns -addr into the tcp:// URL paho wants, refusing anything that is not
// a loopback address unless allowRemote is set: a load tool pointed at someone
// else's broker by a typo is a denial of service.
func brokerURL(addr string, allowRemote bool) (string, error) {
	hp, err := hostPort(addr, allowRemote)
	if err != nil {
		return "", err
	}
	return "tcp://" + hp, nil
}

// hostPort checks one broker address as brokerURL does and returns it as host:port.
func hostPort(addr string, allowRemote bool) (string, error) {
	hostport := addr
	if i := strings.Index(addr, "://"); i >= 0 {
		scheme := addr[:i]
		if scheme != "tcp" && scheme != "mqtt" {
			return "", fmt.Errorf("%w %q: only tcp:// is supported", errBadAddr, addr)
		}
		hostport = addr[i+3:]
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("%w %q: %w", errBadAddr, addr, err)
	}
	if port == "" {
		return "", fmt.Errorf("%w %q: missing port", errBadAddr, addr)
	}
	if !allowRemote && !isLoopback(host) {
		return "", fmt.Errorf("%w: %q is not a loopback address (use -allow-remote to load another host)", errBadAddr, addr)
	}
	return net.JoinHostPort(host, port), nil
}

// addrList checks a comma-separated list of broker addresses (-pub-addr, -sub-addr),
// each as hostPort does, and returns them as host:port in the order given. An empty
// list is def alone.
func addrList(list, def string, allowRemote bool) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		list = def
	}
	var out []string
	for _, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, fmt.Errorf("%w: empty entry in %q", errBadAddr, list)
		}
		hp, err := hostPort(a, allowRemote)
		if err != nil {
			return nil, err
		}
		out = append(out, hp)
	}
	return out, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
