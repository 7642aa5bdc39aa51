package conformance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// runChild starts a child, kills it after afterAcks acknowledgements (0: as soon as
// it has opened the store) and returns its report. The child is always killed and
// waited for before runChild returns.
func (r *crashRun) runChild(round, afterAcks int) ([]crashEvent, string, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, "", err
	}
	defer pr.Close()
	var out limitedBuffer
	cmd := exec.Command(os.Args[0], "-test.run="+runPattern(r.t.Name()), "-test.count=1", "-test.timeout="+(crashChildMax+30*time.Second).String())
	cmd.Env = append(os.Environ(),
		envCrashTarget+"="+r.target,
		envCrashTest+"="+r.t.Name(),
		envCrashWriters+"="+strconv.Itoa(r.h.Writers),
		envCrashSeed+"="+strconv.FormatUint(r.seed+uint64(round), 10),
		envCrashRound+"="+strconv.Itoa(round),
	)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = childAttr() // the child dies with the parent where the system can do that
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return nil, "", fmt.Errorf("start child: %w", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			<-waited
		}
	}()

	type result struct {
		events []crashEvent
		err    error
	}
	reached := make(chan struct{})
	read := make(chan result, 1)
	go func() {
		var res result
		acks, once := 0, sync.Once{}
		br := bufio.NewReaderSize(pr, 1<<16)
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				// A line without its newline was cut by the kill: not a report the
				// parent may count on.
				if !errors.Is(err, io.EOF) {
					res.err = err
				}
				read <- res
				return
			}
			e, err := parseEvent(line[:len(line)-1])
			if err != nil {
				res.err = err
				read <- res
				return
			}
			if e == nil { // "R": the store is open
				if afterAcks == 0 {
					once.Do(func() { close(reached) })
				}
				continue
			}
			res.events = append(res.events, *e)
			if !e.begin {
				if acks++; acks >= afterAcks {
					once.Do(func() { close(reached) })
				}
			}
		}
	}()
	timeout := time.NewTimer(crashRoundMax)
	defer timeout.Stop()
	select {
	case <-reached:
	case <-timeout.C:
		// A slow driver: kill it where it is, if it wrote anything at all.
	case err := <-waited:
		killed = true
		res := <-read
		_ = res
		return nil, out.String(), fmt.Errorf("the child exited by itself (%v) before the kill", err)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	werr := <-waited
	killed = true
	res := <-read
	if res.err != nil {
		return nil, out.String(), fmt.Errorf("read the child's report: %w", res.err)
	}
	if !isSIGKILL(werr) {
		return nil, out.String(), fmt.Errorf("the child exited by itself (%v) before the kill", werr)
	}
	if afterAcks > 0 && len(res.events) == 0 {
		return nil, out.String(), fmt.Errorf("the child acknowledged nothing in %s", crashRoundMax)
	}
	return res.events, out.String(), nil
}

func parseEvent(line []byte) (*crashEvent, error) {
	kind, rest, _ := bytes.Cut(line, []byte{' '})
	switch string(kind) {
	case "R":
		return nil, nil
	case "B", "A":
		ws, payload, _ := bytes.Cut(rest, []byte{' '})
		w, err := strconv.Atoi(string(ws))
		if err != nil {
			return nil, fmt.Errorf("bad report line %q", line)
		}
		e := &crashEvent{begin: kind[0] == 'B', w: w}
		if e.begin {
			err = json.Unmarshal(payload, &e.op)
		} else {
			err = json.Unmarshal(payload, &e.seqs)
		}
		if err != nil {
			return nil, fmt.Errorf("bad report line %.200q: %v", line, err)
		}
		return e, nil
	}
	return nil, fmt.Errorf("bad report line %.200q", line)
}

func isSIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// runPattern is the -test.run pattern that selects exactly the test named name.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// limitedBuffer keeps the first 64 KiB written to it.
type limitedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := 64<<10 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// crashChild is the child's part: open the store, read each writer's part of it,
// then write until killed, reporting on fd 3.
func crashChild(h CrashHarness, target string) {
	h = h.withDefaults()
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "crash child: "+format+"\n", args...)
		os.Exit(3)
	}
	writers, err := strconv.Atoi(os.Getenv(envCrashWriters))
	if err != nil {
		fail("%s: %v", envCrashWriters, err)
	}
	seed, err := strconv.ParseUint(os.Getenv(envCrashSeed), 10, 64)
	if err != nil {
		fail("%s: %v", envCrashSeed, err)
	}
	round, _ := strconv.Atoi(os.Getenv(envCrashRound))
	report := os.NewFile(3, "crash-report")
	var mu sync.Mutex
	send := func(line []byte) {
		mu.Lock()
		defer mu.Unlock()
		// One write per line: a kill cuts at most the last line.
		if _, err := report.Write(line); err != nil {
			fail("report: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), crashChildMax)
	defer cancel()
	p, err := h.Open(ctx, target)
	if err != nil {
		fail("open %s: %v", target, err)
	}
	all, err := observe(ctx, p)
	if err != nil {
		fail("read the store: %v", err)
	}
	parts, _ := all.split(writers)
	send([]byte("R\n"))
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			m := parts[w]
			for k := 0; ctx.Err() == nil; k++ {
				op := genOp(rng, w, round, k, m)
				js, err := json.Marshal(op)
				if err != nil {
					fail("encode: %v", err)
				}
				send(fmt.Appendf(nil, "B %d %s\n", w, js))
				seqs, err := op.exec(ctx, p)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					fail("writer %d: %s: %v", w, op, err)
				}
				m.apply(op, seqs, nil)
				js, _ = json.Marshal(seqs)
				send(fmt.Appendf(nil, "A %d %s\n", w, js))
			}
		})
	}
	wg.Wait()
	_ = p.Close()
	os.Exit(0)
}
