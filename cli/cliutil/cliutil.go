// Package cliutil holds what every meshlab command shares: global flags, usage errors (exit 2) and
// argument validators that produce them, and the lab cluster's client configuration.
package cliutil

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"

	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/cluster"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/internal/yamldoc"
)

// Globals are the persistent flags of the root command.
type Globals struct {
	Name       string // kind cluster name
	Kubeconfig string // --kubeconfig; with Context empty too, the commands act on the lab's kind cluster
	Context    string // --context of the kubeconfig (kubectl's rules: --kubeconfig, else $KUBECONFIG merged)
	Verbosity  int
	Quiet      bool
}

// Env is what a command constructor receives: the logger, the streams and the global flags.
type Env struct {
	Logger  *ui.Logger
	Streams ui.Streams
	Globals *Globals
}

// UsageError marks an error as the user's invocation being wrong; meshlab exits 2 for it.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// IsUsage reports whether err is a usage error.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

// LoadMesh reads the user's YAML files into a mesh snapshot, as the control plane would build it: the
// loader's warnings and the model's problems are logged as warnings, and malformed or invalid input is a
// BadInput error (exit 2).
func LoadMesh(env Env, files []string) (*model.Snapshot, error) {
	store, warnings, err := ingest.LoadFiles(files...)
	for _, w := range warnings {
		env.Logger.Warnf("%s", w)
	}
	if err != nil {
		return nil, BadInput(err)
	}
	snap := model.Build(store.Objects())
	for _, p := range snap.Problems {
		env.Logger.Warnf("%s", p)
	}
	return snap, nil
}

// BadInput classifies an error of reading the user's YAML: when the input itself is wrong (malformed,
// misspelt fields, invalid config; any *yamldoc.Error in err) it is a UsageError, so meshlab exits 2 as for
// any wrong invocation; other errors (a file that cannot be read) are returned as they are and exit 1.
func BadInput(err error) error {
	var bad *yamldoc.Error
	if err != nil && errors.As(err, &bad) {
		return &UsageError{Err: err}
	}
	return err
}

// ExactArgs is cobra.ExactArgs returning a UsageError.
func ExactArgs(n int) cobra.PositionalArgs {
	return wrap(cobra.ExactArgs(n))
}

// NoArgs is cobra.NoArgs returning a UsageError.
func NoArgs(cmd *cobra.Command, args []string) error { return wrap(cobra.NoArgs)(cmd, args) }

// MinimumNArgs is cobra.MinimumNArgs returning a UsageError.
func MinimumNArgs(n int) cobra.PositionalArgs { return wrap(cobra.MinimumNArgs(n)) }

// RangeArgs is cobra.RangeArgs returning a UsageError.
func RangeArgs(lo, hi int) cobra.PositionalArgs { return wrap(cobra.RangeArgs(lo, hi)) }

func wrap(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &UsageError{Err: err}
		}
		return nil
	}
}

// ExitError ends meshlab with a chosen exit code (for example a scenario run that failed: 1, or an
// environment problem: 2). Err, if set, is printed.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}

// WriteJSON writes v as indented JSON and a newline: every command's -o json.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// EnvOr returns the environment variable key, or def when it is unset or empty: how the component
// commands take their Kubernetes-injected settings.
func EnvOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Target is the cluster the global flags name: --kubeconfig/--context as kubectl resolves them, else the
// lab's kind cluster (--name).
func (g *Globals) Target() cluster.Target {
	return cluster.Target{Name: g.Name, Kubeconfig: g.Kubeconfig, Context: g.Context}
}

// KubeContext is the context subprocesses (kubectl in a lab) must use to act on the cluster the global
// flags name; empty for the lab, whose commands find it by name.
func KubeContext(env Env) string {
	t := Target(env)
	if !t.Explicit() {
		return ""
	}
	name, err := t.ContextName()
	if err != nil {
		return env.Globals.Context // the lab's connect step reports the kubeconfig's problem
	}
	return name
}

// Target is env.Globals.Target().
func Target(env Env) cluster.Target { return env.Globals.Target() }

// RESTConfig is the client configuration of the cluster the global flags name (see Target).
func RESTConfig(env Env) (*rest.Config, error) {
	return Target(env).RESTConfig(env.Logger)
}

// Clients connects to the cluster the global flags name.
func Clients(env Env) (*cluster.Clients, error) {
	cfg, err := RESTConfig(env)
	if err != nil {
		return nil, err
	}
	return cluster.NewClients(cfg)
}

// Namespace is a command's -n: the flag when given, else the context's namespace (kubectl's default), or
// "default" in the lab.
func Namespace(env Env, flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	return Target(env).Namespace()
}
