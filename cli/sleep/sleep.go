// Package sleep implements `meshlab sleep`, the sleep client pod's main process: it does nothing until
// SIGTERM or SIGINT and then exits 0, so that `kubectl exec deploy/sleep -- meshlab curl ...` has a pod
// to run in (upstream's sleep sample runs `sleep infinity` in a curl image).
package sleep

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
)

// notified is called once the signal handlers are installed; tests use it to know when to signal.
var notified = func() {}

// NewCommand returns the sleep command.
func NewCommand(env cliutil.Env) *cobra.Command {
	return &cobra.Command{
		Use:   "sleep",
		Short: "Idle until SIGTERM or SIGINT (the sleep client pod's process)",
		Args:  cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runE(cmd.Context(), env)
		},
	}
}

func runE(ctx context.Context, env cliutil.Env) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	notified()
	env.Logger.V(1)("sleeping until SIGTERM or SIGINT")
	<-ctx.Done()
	env.Logger.V(1)("woken up, exiting")
	return nil
}
