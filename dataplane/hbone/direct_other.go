//go:build !linux

package hbone

import (
	"errors"
	"syscall"
)

// directDelivery is off outside Linux: WriteTo always copies from the stream's buffer.
const directDelivery = false

func tryWrite(syscall.RawConn, []byte) (int, error) {
	return 0, errors.ErrUnsupported
}
