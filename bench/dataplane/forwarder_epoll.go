package dataplane

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ForwarderIOEnv, set to "epoll", makes the forwarder path's proxies copy bytes on one OS thread running a
// level-triggered epoll loop with raw system calls — no goroutine, no netpoller, no scheduler on the data
// path, the way a C proxy would — instead of with Go's net package. Comparing the two shows how much of the
// floor is Go's runtime and how much is the kernel and the machine.
const ForwarderIOEnv = "MESHLAB_BENCH_FORWARDER_IO"

// epollLoop carries the bytes of every connection pair handed to it on one locked OS thread.
type epollLoop struct {
	ep    int
	mu    sync.Mutex
	peers map[int32]int32 // fd -> the fd its bytes go to
}

func newEpollLoop() (*epollLoop, error) {
	if runtime.GOMAXPROCS(0) < 2 {
		// The loop blocks in epoll_pwait without giving up its P; with one P nothing else would run.
		return nil, errors.New("the epoll forwarder needs GOMAXPROCS >= 2")
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	l := &epollLoop{ep: ep, peers: map[int32]int32{}}
	go l.run()
	return l, nil
}

// add takes over a and b (closing the Go connections, which leaves the loop their own descriptors).
func (l *epollLoop) add(a, b net.Conn) error {
	fa, errA := detach(a)
	fb, errB := detach(b)
	if err := errors.Join(errA, errB); err != nil {
		for _, fd := range []int{fa, fb} {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
		return err
	}
	l.mu.Lock()
	l.peers[int32(fa)], l.peers[int32(fb)] = int32(fb), int32(fa)
	l.mu.Unlock()
	for _, fd := range []int{fa, fb} {
		if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			l.closePair(int32(fd))
			return fmt.Errorf("epoll_ctl: %w", err)
		}
	}
	return nil
}

// detach returns a blocking duplicate of c's descriptor and closes c.
func detach(c net.Conn) (int, error) {
	defer c.Close()
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		return -1, err
	}
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return -1, err
	}
	return fd, unix.SetNonblock(fd, false)
}

func (l *epollLoop) run() {
	runtime.LockOSThread() // never unlocked: the thread is the loop's for the process's life
	buf := make([]byte, 32<<10)
	events := make([]unix.EpollEvent, 64)
	for {
		// A raw system call: blocking here through syscall.Syscall would have the runtime hand the P to
		// another thread and take it back on every wake-up, which costs more than all the rest.
		n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(l.ep),
			uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), ^uintptr(0), 0, 0)
		if errno != 0 {
			continue // EINTR
		}
		for _, e := range events[:n] {
			l.mu.Lock()
			dst, ok := l.peers[e.Fd]
			l.mu.Unlock()
			if !ok {
				continue
			}
			// Level-triggered: one read per readiness; more data is reported again, so no read has to
			// end in EAGAIN. Writes block (the descriptors are blocking) until the peer takes everything.
			r, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(e.Fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
			if errno != 0 || r == 0 {
				l.closePair(e.Fd)
				continue
			}
			for off := uintptr(0); off < r; {
				w, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(dst), uintptr(unsafe.Pointer(&buf[off])), r-off)
				if errno != 0 {
					l.closePair(e.Fd)
					break
				}
				off += w
			}
		}
	}
}

// closePair closes fd and its peer. Connections end whole: the benchmark's keep-alive connections
// only close when a run is over.
func (l *epollLoop) closePair(fd int32) {
	l.mu.Lock()
	peer, ok := l.peers[fd]
	delete(l.peers, fd)
	delete(l.peers, peer)
	l.mu.Unlock()
	if ok {
		unix.Close(int(fd))
		unix.Close(int(peer))
	}
}
