package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// Magic starts every archive (PNG-style: a non-ASCII byte, the name, line-ending
// bytes that a text-mode transfer would mangle).
const Magic = "\x89MQTTSTORE\r\n\x1a\n"

// Version is the archive format version this package writes and the newest it reads.
const Version = 1

// Frame types beyond the record kinds.
const (
	frameHeader  = 'H'
	frameTrailer = 'Z'
)

// MaxFrame bounds the body of one frame (an MQTT packet is at most 256 MiB). A
// larger length is refused as corrupt before anything is allocated.
const MaxFrame = 256<<20 + 1<<16

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// HexBytes is a byte string written as hex in JSON.
type HexBytes []byte

// MarshalText implements encoding.TextMarshaler.
func (h HexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *HexBytes) UnmarshalText(b []byte) error {
	v, err := hex.DecodeString(string(b))
	*h = v
	return err
}

// Header is the first frame of an archive: where and when it was made.
type Header struct {
	Format        int       `json:"format"`
	CreatedAt     time.Time `json:"created_at"`
	Tool          string    `json:"tool"`
	SDKVersion    string    `json:"sdk_version"`
	SchemaVersion uint32    `json:"schema_version"`
	// SourceDriver and SourceCreatedAt describe the exported store (informative).
	SourceDriver    string    `json:"source_driver,omitempty"`
	SourceCreatedAt time.Time `json:"source_created_at,omitzero"`
}

// Trailer is the last frame: counts and content digests of every kind, and the
// SHA-256 of every byte of the archive before the trailer frame.
type Trailer struct {
	Records uint64   `json:"records"`
	Summary Summary  `json:"summary"`
	SHA256  HexBytes `json:"sha256"`
}

// Writer writes an archive. Records of one (session, class) queue must be written
// consecutively, head first, and after their session's KindSession record.
type Writer struct {
	w    *bufio.Writer
	h    hash.Hash
	sum  Summary
	n    uint64
	buf  []byte
	last struct {
		id    string
		class persistence.PacketClass
		idx   uint64
		ok    bool
	}
	err   error
	total int64
}

// NewWriter writes the magic, the version and hdr to w and returns a Writer for
// the records. hdr.Format is set to [Version].
func NewWriter(w io.Writer, hdr Header) (*Writer, error) {
	aw := &Writer{w: bufio.NewWriterSize(w, 256<<10), h: sha256.New(), sum: Summary{}}
	aw.put([]byte(Magic))
	aw.put([]byte{Version})
	hdr.Format = Version
	js, err := json.Marshal(hdr)
	if err != nil {
		return nil, err
	}
	aw.frame(frameHeader, js)
	return aw, aw.err
}

func (w *Writer) put(b []byte) {
	if w.err != nil {
		return
	}
	w.h.Write(b)
	_, w.err = w.w.Write(b)
	w.total += int64(len(b))
}

func (w *Writer) frame(typ byte, body []byte) {
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = typ
	n := 1 + binary.PutUvarint(hdr[1:], uint64(len(body)))
	crc := crc32.Update(crc32.Update(0, castagnoli, hdr[:n]), castagnoli, body)
	w.put(hdr[:n])
	w.put(body)
	w.put(binary.BigEndian.AppendUint32(nil, crc))
}

// Write appends r. It sets r.Index for packets (their position in their queue).
func (w *Writer) Write(r *Record) error {
	if w.err != nil {
		return w.err
	}
	if r.Kind == KindPacket {
		if w.last.ok && w.last.id == r.ID && w.last.class == r.Class {
			w.last.idx++
		} else {
			w.last.id, w.last.class, w.last.idx, w.last.ok = r.ID, r.Class, 0, true
		}
		r.Index = w.last.idx
	}
	body, err := AppendBody(w.buf[:0], r)
	if err != nil {
		return err
	}
	if len(body) > MaxFrame {
		return fmt.Errorf("%w: %s record of %d bytes exceeds the frame limit", ErrInvalidRecord, r.Kind, len(body))
	}
	w.buf = body
	if err := w.sum.Add(r); err != nil {
		return err
	}
	w.frame(byte(r.Kind), body)
	w.n++
	return w.err
}

// Bytes returns the number of bytes written so far.
func (w *Writer) Bytes() int64 { return w.total }

// Close writes the trailer and flushes. It does not close the underlying writer.
func (w *Writer) Close() (Trailer, error) {
	t := Trailer{Records: w.n, Summary: w.sum, SHA256: w.h.Sum(nil)}
	if w.err != nil {
		return t, w.err
	}
	js, err := json.Marshal(t)
	if err != nil {
		return t, err
	}
	w.frame(frameTrailer, js)
	if w.err == nil {
		w.err = w.w.Flush()
	}
	return t, w.err
}

// Reader reads an archive, verifying every frame's CRC as it goes and, at the
// trailer, the SHA-256 of the whole archive and the count and digest of every kind.
type Reader struct {
	r       *bufio.Reader
	h       hash.Hash
	hdr     Header
	trailer *Trailer
	sum     Summary
	n       uint64
	last    struct {
		id    string
		class persistence.PacketClass
		idx   uint64
		ok    bool
	}
	read int64
	body bytes.Buffer
	err  error
}

// NewReader reads the magic, version and header of an archive.
func NewReader(r io.Reader) (*Reader, error) {
	ar := &Reader{r: bufio.NewReaderSize(r, 256<<10), h: sha256.New(), sum: Summary{}}
	head := make([]byte, len(Magic)+1)
	if _, err := io.ReadFull(ar.r, head); err != nil {
		return nil, fmt.Errorf("%w: reading the magic: %v", ErrCorrupt, err)
	}
	ar.consumed(head)
	if string(head[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("%w: not an mqttstore archive (bad magic)", ErrCorrupt)
	}
	if v := head[len(Magic)]; v == 0 || v > Version {
		return nil, fmt.Errorf("%w: format version %d, this tool reads up to %d", ErrVersion, v, Version)
	}
	typ, body, err := ar.frame()
	if err != nil {
		return nil, err
	}
	if typ != frameHeader {
		return nil, fmt.Errorf("%w: first frame is %q, want the header", ErrCorrupt, typ)
	}
	if err := json.Unmarshal(body, &ar.hdr); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	return ar, nil
}

func (r *Reader) consumed(b []byte) {
	r.h.Write(b)
	r.read += int64(len(b))
}

// frame reads one frame and checks its CRC. The body is valid until the next call.
func (r *Reader) frame() (byte, []byte, error) {
	typ, err := r.r.ReadByte()
	if err == io.EOF {
		return 0, nil, fmt.Errorf("%w: truncated: no trailer", ErrCorrupt)
	}
	if err != nil {
		return 0, nil, err
	}
	n, err := binary.ReadUvarint(r.r)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: frame length at byte %d: %v", ErrCorrupt, r.read, err)
	}
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("%w: frame of %d bytes at byte %d exceeds the limit", ErrCorrupt, n, r.read)
	}
	hdr := binary.AppendUvarint([]byte{typ}, n)
	r.body.Reset()
	if m, err := io.CopyN(&r.body, r.r, int64(n)); err != nil {
		return 0, nil, fmt.Errorf("%w: truncated frame at byte %d (%d of %d bytes): %v", ErrCorrupt, r.read, m, n, err)
	}
	var sum [4]byte
	if _, err := io.ReadFull(r.r, sum[:]); err != nil {
		return 0, nil, fmt.Errorf("%w: truncated frame checksum at byte %d: %v", ErrCorrupt, r.read, err)
	}
	body := r.body.Bytes()
	crc := crc32.Update(crc32.Update(0, castagnoli, hdr), castagnoli, body)
	if binary.BigEndian.Uint32(sum[:]) != crc {
		return 0, nil, fmt.Errorf("%w: checksum mismatch in the frame at byte %d", ErrCorrupt, r.read)
	}
	if typ != frameTrailer {
		r.consumed(hdr)
		r.consumed(body)
		r.consumed(sum[:])
	} else {
		r.read += int64(len(hdr) + len(body) + 4)
	}
	return typ, body, nil
}

// Header returns the archive's header.
func (r *Reader) Header() Header { return r.hdr }

// BytesRead returns how many bytes of the archive have been consumed.
func (r *Reader) BytesRead() int64 { return r.read }

// Trailer returns the trailer once Next has returned io.EOF, else nil.
func (r *Reader) Trailer() *Trailer { return r.trailer }

// Next returns the next record, or io.EOF after the trailer has been read and the
// whole archive verified. Any other error matches ErrCorrupt (or is the underlying
// reader's error) and is returned again by every later call.
func (r *Reader) Next() (*Record, error) {
	if r.err != nil {
		return nil, r.err
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
	}
	return rec, err
}

func (r *Reader) next() (*Record, error) {
	typ, body, err := r.frame()
	if err != nil {
		return nil, err
	}
	if typ == frameTrailer {
		return nil, r.finish(body)
	}
	rec, err := ParseBody(Kind(typ), body)
	if err != nil {
		return nil, fmt.Errorf("%w (frame ending at byte %d)", err, r.read)
	}
	if rec.Kind == KindPacket {
		if r.last.ok && r.last.id == rec.ID && r.last.class == rec.Class {
			r.last.idx++
		} else {
			r.last.id, r.last.class, r.last.idx, r.last.ok = rec.ID, rec.Class, 0, true
		}
		rec.Index = r.last.idx
	}
	if err := r.sum.Add(rec); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	r.n++
	return rec, nil
}

func (r *Reader) finish(body []byte) error {
	var t Trailer
	if err := json.Unmarshal(body, &t); err != nil {
		return fmt.Errorf("%w: trailer: %v", ErrCorrupt, err)
	}
	if got := r.h.Sum(nil); !bytes.Equal(got, t.SHA256) {
		return fmt.Errorf("%w: SHA-256 of the archive is %x, the trailer says %x", ErrCorrupt, got, []byte(t.SHA256))
	}
	if t.Records != r.n {
		return fmt.Errorf("%w: %d records read, the trailer says %d", ErrCorrupt, r.n, t.Records)
	}
	if bad := r.sum.Diff(t.Summary); len(bad) > 0 {
		return fmt.Errorf("%w: content digest of %v differs from the trailer", ErrCorrupt, bad)
	}
	if _, err := r.r.ReadByte(); err != io.EOF {
		return fmt.Errorf("%w: data after the trailer", ErrCorrupt)
	}
	r.trailer = &t
	return io.EOF
}

// IsCorrupt reports whether err says the archive is unreadable or of a newer format.
func IsCorrupt(err error) bool { return errors.Is(err, ErrCorrupt) || errors.Is(err, ErrVersion) }
