package procstat

import (
	"os"
	"strconv"
	"testing"
)

func TestStatusKB(t *testing.T) {
	for _, pid := range []string{"self", strconv.Itoa(os.Getpid())} {
		kb, err := StatusKB(pid, "VmRSS")
		if err != nil || kb <= 0 {
			t.Errorf("StatusKB(%s, VmRSS) = %d, %v; want a positive size", pid, kb, err)
		}
	}
	if _, err := StatusKB("self", "NoSuchField"); err == nil {
		t.Error("StatusKB of a missing field: no error")
	}
	if _, err := StatusKB("0", "VmRSS"); err == nil {
		t.Error("StatusKB of pid 0: no error")
	}
}
