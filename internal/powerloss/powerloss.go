// Package powerloss is a file system for power-loss tests: a FUSE mount whose files
// keep, besides what was written to them, what was on "disk" at their last fsync,
// and that can lose everything since on [Disk.Cut], as a machine that loses power
// does. A SIGKILL keeps the operating system's page cache, so only such a test
// catches a driver that acknowledges writes it never synced.
//
// What it models, exactly:
//
//   - File data and size: durable at the file's last fsync(2), fdatasync(2) or
//     msync(MS_SYNC) (all reach the file system as FUSE_FSYNC). Cut brings every
//     file back to that content. A file never synced comes back empty.
//   - Names (create, unlink, rename) are durable at once, as on a file system that
//     journals metadata synchronously: the test is about data a driver forgot to
//     sync, not about directory fsyncs.
//   - One flat directory: subdirectories are refused (bbolt and Badger need none).
//
// Cut must be called when no process has a file of the mount open (after the
// writer was killed and the checker's store closed): it unmounts (the kernel then
// hands over whatever dirty pages it still held, which count as unsynced), throws
// away every unsynced byte and mounts the durable state again at the same path,
// so that nothing read afterwards can come from the old page cache.
//
// The file system is served by a separate process (the test binary started again;
// this package's init function serves when the environment says so): a Go process
// must not read through mmap a FUSE file it serves itself, because a page fault
// cannot be preempted and the garbage collector's stop-the-world then waits forever
// for the thread that waits for the server.
//
// Mounting needs /dev/fuse and the right to mount (root, or CAP_SYS_ADMIN): Mount
// skips the test where they are missing, except when the CI environment variable is
// set, where that is a failure.
package powerloss

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// disk is the file system, served by the server process.
type disk struct {
	dir string

	mu    sync.Mutex
	files map[string]*file
	srv   *fuse.Server
	stats Stats
}

// Stats counts what the file system saw.
type Stats struct {
	// Writes and Syncs count write and fsync requests; Cuts counts power cuts.
	Writes, Syncs, Cuts int
	// LostBytes is the number of written bytes that were not synced when the
	// power was cut, over all cuts.
	LostBytes int64
}

type file struct {
	cur     []byte // what readers see
	durable []byte // what survives a cut
	dirty   [][2]int64
}

// cut loses power: every byte not synced is gone, and the disk is mounted again.
func (d *disk) cut() error {
	if err := d.unmount(); err != nil {
		return fmt.Errorf("unmount %s before the cut (is a file still open?): %w", d.dir, err)
	}
	d.mu.Lock()
	d.stats.Cuts++
	for _, f := range d.files {
		for _, r := range f.dirty {
			d.stats.LostBytes += r[1] - r[0]
		}
		f.cur = slices.Clone(f.durable)
		f.dirty = nil
	}
	d.mu.Unlock()
	if err := d.mount(); err != nil {
		return fmt.Errorf("mount %s again after the cut: %w", d.dir, err)
	}
	return nil
}

func (d *disk) mount() error {
	zero := time.Duration(0)
	srv, err := fs.Mount(d.dir, &dirNode{d: d}, &fs.Options{
		MountOptions: fuse.MountOptions{
			DirectMount:       true,
			DirectMountStrict: true, // as root; no fusermount binary needed
			FsName:            "powerloss",
			Name:              "powerloss",
		},
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
	})
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.srv = srv
	d.mu.Unlock()
	return nil
}

func (d *disk) unmount() error {
	d.mu.Lock()
	srv := d.srv
	d.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Unmount(); err != nil {
		return err
	}
	srv.Wait()
	d.mu.Lock()
	d.srv = nil
	d.mu.Unlock()
	return nil
}

// dirNode is the one directory.
type dirNode struct {
	fs.Inode
	d *disk
}

var (
	_ fs.NodeOnAdder  = (*dirNode)(nil)
	_ fs.NodeCreater  = (*dirNode)(nil)
	_ fs.NodeUnlinker = (*dirNode)(nil)
	_ fs.NodeRenamer  = (*dirNode)(nil)
	_ fs.NodeFsyncer  = (*dirNode)(nil)
	_ fs.NodeStatfser = (*dirNode)(nil)
)

// OnAdd makes the nodes of the files that survived.
func (n *dirNode) OnAdd(ctx context.Context) {
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	for name, f := range n.d.files {
		n.AddChild(name, n.NewPersistentInode(ctx, &fileNode{d: n.d, f: f}, fs.StableAttr{Mode: syscall.S_IFREG}), false)
	}
}

func (n *dirNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	n.d.mu.Lock()
	f := &file{}
	n.d.files[name] = f
	n.d.mu.Unlock()
	fn := &fileNode{d: n.d, f: f}
	ch := n.NewPersistentInode(ctx, fn, fs.StableAttr{Mode: syscall.S_IFREG})
	fn.attr(&out.Attr)
	return ch, nil, 0, 0
}

func (n *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	if _, ok := n.d.files[name]; !ok {
		return syscall.ENOENT
	}
	delete(n.d.files, name)
	return 0
}

func (n *dirNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if newParent.EmbeddedInode() != n.EmbeddedInode() || flags != 0 {
		return syscall.ENOTSUP
	}
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	f, ok := n.d.files[name]
	if !ok {
		return syscall.ENOENT
	}
	delete(n.d.files, name)
	n.d.files[newName] = f
	return 0
}

// Fsync of the directory: names are always durable.
func (n *dirNode) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno { return 0 }

func (n *dirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize, out.Frsize = 4096, 4096
	out.Blocks, out.Bfree, out.Bavail = 1<<24, 1<<23, 1<<23
	out.Files, out.Ffree = 1<<20, 1<<19
	out.NameLen = 255
	return 0
}

// fileNode is one file.
type fileNode struct {
	fs.Inode
	d *disk
	f *file
}

var (
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeReader    = (*fileNode)(nil)
	_ fs.NodeWriter    = (*fileNode)(nil)
	_ fs.NodeFsyncer   = (*fileNode)(nil)
	_ fs.NodeFlusher   = (*fileNode)(nil)
	_ fs.NodeGetattrer = (*fileNode)(nil)
	_ fs.NodeSetattrer = (*fileNode)(nil)
	_ fs.NodeAllocater = (*fileNode)(nil)
)

// attr fills a; d.mu must not be held.
func (n *fileNode) attr(a *fuse.Attr) {
	n.d.mu.Lock()
	size := len(n.f.cur)
	n.d.mu.Unlock()
	a.Mode = syscall.S_IFREG | 0o600
	a.Size = uint64(size)
	a.Blocks = (uint64(size) + 511) / 512
	a.Nlink = 1
}

func (n *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, 0, 0
}

func (n *fileNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	cur := n.f.cur
	if off >= int64(len(cur)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(cur)))
	return fuse.ReadResultData(slices.Clone(cur[off:end])), 0
}

func (n *fileNode) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	end := off + int64(len(data))
	n.f.resize(end, false)
	copy(n.f.cur[off:], data)
	n.f.dirty = append(n.f.dirty, [2]int64{off, end})
	n.d.stats.Writes++
	return uint32(len(data)), 0
}

// resize grows (when grow, or always to at least size) or sets the current size.
func (f *file) resize(size int64, set bool) {
	switch {
	case size > int64(len(f.cur)):
		f.cur = append(f.cur, make([]byte, size-int64(len(f.cur)))...)
	case set && size < int64(len(f.cur)):
		f.cur = f.cur[:size]
	}
}

// Fsync makes the file's current content durable.
func (n *fileNode) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	f := n.f
	if len(f.durable) != len(f.cur) {
		if len(f.durable) > len(f.cur) {
			f.durable = f.durable[:len(f.cur)]
		} else {
			f.durable = append(f.durable, f.cur[len(f.durable):]...)
		}
	}
	for _, r := range f.dirty {
		if r[0] < int64(len(f.cur)) {
			copy(f.durable[r[0]:min(r[1], int64(len(f.cur)))], f.cur[r[0]:])
		}
	}
	f.dirty = nil
	n.d.stats.Syncs++
	return 0
}

func (n *fileNode) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return 0 }

func (n *fileNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.attr(&out.Attr)
	return 0
}

func (n *fileNode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		n.d.mu.Lock()
		old := int64(len(n.f.cur))
		n.f.resize(int64(size), true)
		if int64(size) != old {
			// A size change is data: durable at the next fsync. Mark the
			// changed range dirty so that the sync copies it.
			n.f.dirty = append(n.f.dirty, [2]int64{min(old, int64(size)), max(old, int64(size))})
		}
		n.d.mu.Unlock()
	}
	n.attr(&out.Attr)
	return 0
}

func (n *fileNode) Allocate(ctx context.Context, fh fs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	if mode == 0 { // FALLOC_FL_KEEP_SIZE and friends: nothing to model
		n.f.resize(int64(off+size), false)
		n.f.dirty = append(n.f.dirty, [2]int64{int64(off), int64(off + size)})
	}
	return 0
}
