package hbone

import "syscall"

// directDelivery: on Linux the read loop may write received data straight into the destination socket.
const directDelivery = true

// tryWrite writes p to the socket behind rc without blocking (Go's sockets are non-blocking; returning
// true from the callback stops RawConn.Write from waiting for writability). It returns how much the socket
// took; 0 with a nil error when its buffer is full.
func tryWrite(rc syscall.RawConn, p []byte) (int, error) {
	var n int
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		n, werr = syscall.Write(int(fd), p)
		return true
	})
	if err != nil {
		return 0, err
	}
	if werr == syscall.EAGAIN || werr == syscall.EINTR {
		return 0, nil
	}
	if n < 0 {
		n = 0
	}
	return n, werr
}
