package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// payloadHeader is the part of every payload the tool reads back: run id (8 bytes),
// publisher index (4), sequence number (8), send time in Unix nanoseconds (8).
const payloadHeader = 28

func encodePayload(buf []byte, run uint64, pub int, seq uint64, sent time.Time) {
	binary.BigEndian.PutUint64(buf[0:8], run)
	binary.BigEndian.PutUint32(buf[8:12], uint32(pub))
	binary.BigEndian.PutUint64(buf[12:20], seq)
	binary.BigEndian.PutUint64(buf[20:28], uint64(sent.UnixNano()))
}

// decodePayload reads a payload back; ok is false for anything too short to be ours.
func decodePayload(p []byte) (run uint64, pub int, seq uint64, sent time.Time, ok bool) {
	if len(p) < payloadHeader {
		return 0, 0, 0, time.Time{}, false
	}
	run = binary.BigEndian.Uint64(p[0:8])
	pub = int(binary.BigEndian.Uint32(p[8:12]))
	seq = binary.BigEndian.Uint64(p[12:20])
	sent = time.Unix(0, int64(binary.BigEndian.Uint64(p[20:28])))
	return run, pub, seq, sent, true
}

// runState is what the publish phase hands to the drain phase through -state: enough
// to rebuild the drain's expectations without trusting the broker for any of it.
type runState struct {
	RunID  uint64         `json:"run_id"`
	Prefix string         `json:"prefix"`
	Pubs   int            `json:"pubs"`
	Subs   int            `json:"subs"`
	Fanout bool           `json:"fanout"`
	QoS    byte           `json:"qos"`
	Acked  [][][2]uint64  `json:"acked"` // per publisher, [from, to) ranges of acknowledged seqs
	Meta   map[string]any `json:"meta,omitempty"`
}

func writeState(path string, s runState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readState(path string) (runState, error) {
	var s runState
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("state file %s: %w", path, err)
	}
	if s.Pubs <= 0 || s.Subs <= 0 || len(s.Acked) != s.Pubs || s.Prefix == "" {
		return s, errors.New("state file " + path + ": inconsistent publishers, subscribers or prefix")
	}
	for _, rs := range s.Acked {
		for _, r := range rs {
			if r[0] > r[1] || r[1]-r[0] > 1<<32 {
				return s, errors.New("state file " + path + ": bad range")
			}
		}
	}
	return s, nil
}
