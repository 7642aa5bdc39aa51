package tool

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Progress receives the progress of a long operation.
type Progress interface {
	// Add reports items more records done, carrying bytes of payload.
	Add(items, bytes int64)
	// Done ends the display.
	Done()
}

// ProgressMode selects how progress is shown.
type ProgressMode string

// The progress modes.
const (
	ProgressAuto  ProgressMode = "auto"  // a bar on a terminal, plain lines otherwise
	ProgressBar   ProgressMode = "bar"   // a bar (github.com/schollz/progressbar)
	ProgressPlain ProgressMode = "plain" // a line every few seconds
	ProgressNone  ProgressMode = "none"
)

// PlainInterval is how often plain progress prints a line.
var PlainInterval = 2 * time.Second

// NewProgress returns a display of an operation named label over total items (0 or
// less: unknown) written to w.
func NewProgress(mode ProgressMode, w io.Writer, label string, total int64) Progress {
	if mode == ProgressAuto {
		mode = ProgressPlain
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = ProgressBar
		}
	}
	switch mode {
	case ProgressBar:
		if total <= 0 {
			total = -1
		}
		bar := progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("items"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
		return &barProgress{bar: bar, label: label, last: time.Now()}
	case ProgressPlain:
		return &plainProgress{w: w, label: label, total: total, start: time.Now(), last: time.Now()}
	}
	return noProgress{}
}

type noProgress struct{}

func (noProgress) Add(int64, int64) {}
func (noProgress) Done()            {}

type barProgress struct {
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	label string
	bytes int64
	last  time.Time
}

func (p *barProgress) Add(items, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bytes += bytes
	if now := time.Now(); now.Sub(p.last) >= 200*time.Millisecond {
		p.last = now
		p.bar.Describe(fmt.Sprintf("%s %s", p.label, FormatBytes(p.bytes)))
	}
	_ = p.bar.Add64(items)
}

func (p *barProgress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bar.Describe(fmt.Sprintf("%s %s", p.label, FormatBytes(p.bytes)))
	_ = p.bar.Finish()
}

type plainProgress struct {
	mu           sync.Mutex
	w            io.Writer
	label        string
	total        int64
	items, bytes int64
	start, last  time.Time
}

func (p *plainProgress) Add(items, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.items += items
	p.bytes += bytes
	if now := time.Now(); now.Sub(p.last) >= PlainInterval {
		p.last = now
		p.line(now, false)
	}
}

func (p *plainProgress) line(now time.Time, done bool) {
	el := now.Sub(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(p.items) / el
	}
	s := fmt.Sprintf("%s: %d", p.label, p.items)
	if p.total > 0 {
		s += fmt.Sprintf("/%d items (%.1f%%)", p.total, 100*float64(p.items)/float64(p.total))
	} else {
		s += " items"
	}
	s += fmt.Sprintf(", %s, %.0f items/s", FormatBytes(p.bytes), rate)
	switch {
	case done:
		s += fmt.Sprintf(", done in %s", now.Sub(p.start).Round(time.Millisecond))
	case p.total > 0 && rate > 0 && p.items < p.total:
		s += fmt.Sprintf(", ETA %s", time.Duration(float64(p.total-p.items)/rate*float64(time.Second)).Round(time.Second))
	}
	fmt.Fprintln(p.w, s)
}

func (p *plainProgress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line(time.Now(), true)
}

// FormatBytes renders n bytes with a binary unit.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
