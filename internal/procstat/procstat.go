// Package procstat reads a process's figures from /proc, for meshlab's benchmarks.
package procstat

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// StatusKB reads a "Name:  N kB" field of /proc/PID/status, such as VmHWM or RssAnon (pid "self" for this
// process).
func StatusKB(pid, field string) (int64, error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, fmt.Errorf("reading process status: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parsing %s of /proc/%s/status: %w", field, pid, err)
		}
		return v, nil
	}
	return 0, fmt.Errorf("no %s in /proc/%s/status", field, pid)
}
