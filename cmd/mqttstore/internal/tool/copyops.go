package tool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/mqttstore/mqttstore/cmd/mqttstore/internal/archive"
	"github.com/mqttstore/mqttstore/persistence"
)

// Options are shared by the operations.
type Options struct {
	// Progress selects the progress display; the zero value is ProgressNone.
	Progress ProgressMode
	// Log receives progress and notes (the command passes stderr); nil discards.
	Log io.Writer
	// Force lets import write into a non-empty store: archive sessions replace the
	// store's sessions of the same id, archive retained messages replace the store's.
	Force bool
	// NoVerify skips the verification pass after import or migrate.
	NoVerify bool
}

func (o Options) log() io.Writer {
	if o.Log == nil {
		return io.Discard
	}
	return o.Log
}

// total counts the items of st for a progress display, or returns 0 without
// reading anything when no progress is shown.
func (o Options) total(ctx context.Context, st Store) (int64, error) {
	if o.Progress == "" || o.Progress == ProgressNone {
		return 0, nil
	}
	return countItems(ctx, st)
}

func (o Options) progress(label string, total int64) Progress {
	if o.Progress == "" {
		return noProgress{}
	}
	return NewProgress(o.Progress, o.log(), label, total)
}

// CopyReport is the result of an import or migrate.
type CopyReport struct {
	// Resumed: an unfinished copy of the same source was found and completed.
	Resumed bool `json:"resumed"`
	// Written and Skipped count records (skipped: already in the destination).
	Written uint64 `json:"written"`
	Skipped uint64 `json:"skipped"`
	// Verified: counts and digests of every kind matched on both sides.
	Verified bool `json:"verified"`
	// Source and Dest are the per-kind digests compared by verification.
	Source archive.Summary `json:"source,omitempty"`
	Dest   archive.Summary `json:"dest,omitempty"`
}

// Redact returns u with any password and secret option (password=,
// sslpassword=) replaced, for messages and markers: persistence.Redact, the one
// redaction every command uses.
func Redact(u string) string { return persistence.Redact(u) }

// Export writes every record of the store at storeURL to file as an archive. The
// file is written beside its final name and renamed into place when complete and
// synced, so an interrupted export leaves no truncated archive under that name.
// "-" writes to w instead.
func Export(ctx context.Context, storeURL, file string, stdout io.Writer, o Options) (*archive.Trailer, error) {
	st, err := Open(ctx, storeURL)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if file == "-" {
		return ExportTo(ctx, st, stdout, o)
	}
	tmp := file + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	tr, err := ExportTo(ctx, st, f, o)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return nil, err
	}
	if d, err := os.Open(filepath.Dir(file)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return tr, nil
}

// ExportTo writes every record of st to w as an archive.
func ExportTo(ctx context.Context, st Store, w io.Writer, o Options) (*archive.Trailer, error) {
	info, err := storeInfo(ctx, st)
	if err != nil {
		return nil, err
	}
	total, err := o.total(ctx, st)
	if err != nil {
		return nil, err
	}
	aw, err := archive.NewWriter(w, archive.Header{
		CreatedAt: time.Now().UTC(), Tool: "mqttstore", SDKVersion: persistence.SDKVersion,
		SchemaVersion: info.SchemaVersion, SourceDriver: info.Driver, SourceCreatedAt: info.CreatedAt,
	})
	if err != nil {
		return nil, err
	}
	prog := o.progress("export", total)
	err = walk(ctx, st, func(r *archive.Record) error {
		prog.Add(1, recordBytes(r))
		return aw.Write(r)
	})
	prog.Done()
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	tr, err := aw.Close()
	if err != nil {
		return nil, err
	}
	return &tr, nil
}

// Import writes the archive file into the store at storeURL. The store must be
// empty unless o.Force; an interrupted import of the same archive resumes. After
// the archive's own checks (frame CRCs, SHA-256, per-kind digests) pass, the store's
// digests are compared with the archive's.
func Import(ctx context.Context, file, storeURL string, o Options) (*CopyReport, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := Open(ctx, storeURL)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	rep, err := ImportFrom(ctx, f, st, o)
	if err != nil {
		return rep, fmt.Errorf("import %s: %w", file, err)
	}
	return rep, nil
}

// ImportFrom writes the archive read from r into st (see Import).
func ImportFrom(ctx context.Context, r io.Reader, st Store, o Options) (*CopyReport, error) {
	rd, err := archive.NewReader(r)
	if err != nil {
		return nil, err
	}
	h := rd.Header()
	source := fmt.Sprintf("archive created %s from %s", h.CreatedAt.Format(time.RFC3339Nano), h.SourceDriver)
	m, resumed, err := prepareDest(ctx, st, source, o.Force)
	if err != nil {
		return nil, err
	}
	rep := &CopyReport{Resumed: resumed}
	if resumed {
		fmt.Fprintf(o.log(), "import: resuming an unfinished import of this archive\n")
	}
	prog := o.progress("import", 0)
	sk := newSink(ctx, st, m, resumed)
	var last int64
	for {
		r, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			prog.Done()
			sk.abort()
			return rep, err
		}
		if err := sk.record(r); err != nil && !errors.Is(err, errSkipSession) {
			prog.Done()
			sk.abort()
			return rep, err
		}
		n := rd.BytesRead()
		prog.Add(1, n-last)
		last = n
	}
	if err := sk.finish(); err != nil {
		prog.Done()
		return rep, err
	}
	prog.Done()
	rep.Written, rep.Skipped = sk.written, sk.skipped
	rep.Source = rd.Trailer().Summary
	if !o.NoVerify && !m.Replace {
		if rep.Dest, err = summarize(ctx, st, o.progress("verify", int64(rd.Trailer().Records))); err != nil {
			return rep, fmt.Errorf("verify: %w", err)
		}
		if bad := rep.Source.Diff(rep.Dest); len(bad) > 0 {
			return rep, fmt.Errorf("%w: %v differ between the archive and the store", ErrVerify, bad)
		}
		rep.Verified = true
	} else if m.Replace {
		fmt.Fprintf(o.log(), "import: the store held other data before (--force), so it cannot be compared with the archive as a whole\n")
	}
	return rep, finishDest(ctx, st)
}

// Migrate copies every record of the store at srcURL into the empty store at
// dstURL, then verifies that both hold the same records (counts and content digests
// per kind). Started again after an interruption with the same two URLs, it resumes
// from the progress marker the destination holds and finishes the copy.
func Migrate(ctx context.Context, srcURL, dstURL string, o Options) (*CopyReport, error) {
	if srcURL == dstURL {
		return nil, fmt.Errorf("%w: source and destination are the same store", persistence.ErrInvalidArgument)
	}
	src, err := Open(ctx, srcURL)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	defer src.Close()
	dst, err := Open(ctx, dstURL)
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	defer dst.Close()
	return MigrateStores(ctx, src, dst, "store "+Redact(srcURL), o)
}

// MigrateStores copies src into dst (see Migrate); source identifies src in the
// progress marker, so that only a copy of the same source resumes.
func MigrateStores(ctx context.Context, src, dst Store, source string, o Options) (*CopyReport, error) {
	m, resumed, err := prepareDest(ctx, dst, source, false)
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	rep := &CopyReport{Resumed: resumed}
	if resumed {
		fmt.Fprintf(o.log(), "migrate: resuming an unfinished migration from %s\n", source)
	}
	total, err := o.total(ctx, src)
	if err != nil {
		return rep, fmt.Errorf("source: %w", err)
	}
	verifyTotal := total
	if resumed {
		total = 0 // sessions already copied are skipped unread: the total is unknown
	}
	prog := o.progress("migrate", total)
	sk := newSink(ctx, dst, m, resumed)
	err = walk(ctx, src, func(r *archive.Record) error {
		prog.Add(1, recordBytes(r))
		return sk.record(r)
	})
	if err != nil {
		prog.Done()
		sk.abort()
		return rep, fmt.Errorf("migrate: %w", err)
	}
	if err := sk.finish(); err != nil {
		prog.Done()
		return rep, fmt.Errorf("migrate: %w", err)
	}
	prog.Done()
	rep.Written, rep.Skipped = sk.written, sk.skipped
	if !o.NoVerify {
		if rep.Source, err = summarize(ctx, src, o.progress("verify source", verifyTotal)); err != nil {
			return rep, fmt.Errorf("verify source: %w", err)
		}
		if rep.Dest, err = summarize(ctx, dst, o.progress("verify destination", verifyTotal)); err != nil {
			return rep, fmt.Errorf("verify destination: %w", err)
		}
		if bad := rep.Source.Diff(rep.Dest); len(bad) > 0 {
			return rep, fmt.Errorf("%w: %v differ between source and destination", ErrVerify, bad)
		}
		rep.Verified = true
	}
	return rep, finishDest(ctx, dst)
}
