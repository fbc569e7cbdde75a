package cluster

import (
	"github.com/meshlab/meshlab/log"
	kindlog "sigs.k8s.io/kind/pkg/log"
)

// kindLogger adapts meshlab's logger to kind's, so kind's own progress lines read like meshlab's.
type kindLogger struct{ l log.Logger }

var _ kindlog.Logger = kindLogger{}

func (k kindLogger) Warn(msg string)                   { k.l.Warnf("%s", msg) }
func (k kindLogger) Warnf(format string, args ...any)  { k.l.Warnf(format, args...) }
func (k kindLogger) Error(msg string)                  { k.l.Errorf("%s", msg) }
func (k kindLogger) Errorf(format string, args ...any) { k.l.Errorf(format, args...) }
func (k kindLogger) V(level kindlog.Level) kindlog.InfoLogger {
	return kindInfo{logf: k.l.V(int(level) + 1), on: k.l.Enabled(int(level) + 1)}
}

// kindInfo sends kind's V(0) to meshlab's V(1): meshlab prints its own steps; kind's are detail.
type kindInfo struct {
	logf log.Logf
	on   bool
}

func (k kindInfo) Info(msg string)                  { k.logf("%s", msg) }
func (k kindInfo) Infof(format string, args ...any) { k.logf(format, args...) }
func (k kindInfo) Enabled() bool                    { return k.on }
