// Package bookinfo implements `meshlab bookinfo productpage|details|reviews|ratings`, which serve one
// bookinfo service; it is what the bookinfo pods run. Configuration comes from the sample's environment
// variables, as upstream's images read them; flags override a few of them.
package bookinfo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/bookinfo/details"
	"github.com/meshlab/meshlab/bookinfo/productpage"
	"github.com/meshlab/meshlab/bookinfo/ratings"
	"github.com/meshlab/meshlab/bookinfo/reviews"
	"github.com/meshlab/meshlab/cli/cliutil"
)

// defaultListen is where every bookinfo service listens.
const defaultListen = ":9080"

type flagpole struct {
	Listen string
	// reviews only
	Version       string
	EnableRatings bool
	StarColor     string
}

// NewCommand returns the bookinfo command and its one subcommand per service.
func NewCommand(env cliutil.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bookinfo",
		Short: "Serve one of bookinfo's services (what the bookinfo pods run)",
		Long: `Serve one of the bookinfo sample's services on :9080, behaving like Istio's upstream sample.
Upstream addresses come from SERVICES_DOMAIN, DETAILS_HOSTNAME/DETAILS_SERVICE_PORT,
REVIEWS_HOSTNAME/REVIEWS_SERVICE_PORT and RATINGS_HOSTNAME/RATINGS_SERVICE_PORT; reviews reads
SERVICE_VERSION, ENABLE_RATINGS, STAR_COLOR, HOSTNAME and CLUSTER_NAME; ratings reads SERVICE_VERSION
(v-faulty, v-delayed). Each request is logged with -v.`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		serviceCommand(env, "productpage", "the product page and its JSON API", &flagpole{},
			func(_ *cobra.Command, _ *flagpole, logf func(string, ...any)) (http.Handler, error) {
				cfg := productpage.ConfigFromEnv(os.Getenv)
				cfg.Logf = logf
				env.Logger.V(0)("productpage: details at %s, reviews at %s, ratings at %s", cfg.DetailsURL, cfg.ReviewsURL, cfg.RatingsURL)
				return productpage.New(cfg), nil
			}),
		serviceCommand(env, "details", "the book's details", &flagpole{},
			func(_ *cobra.Command, _ *flagpole, logf func(string, ...any)) (http.Handler, error) {
				cfg := details.ConfigFromEnv(os.Getenv)
				cfg.Logf = logf
				return details.New(cfg), nil
			}),
		reviewsCommand(env),
		serviceCommand(env, "ratings", "the stars each reviewer gave", &flagpole{},
			func(_ *cobra.Command, _ *flagpole, logf func(string, ...any)) (http.Handler, error) {
				cfg := ratings.ConfigFromEnv(os.Getenv)
				cfg.Logf = logf
				env.Logger.V(0)("ratings %s", cfg.ServiceVersion)
				return ratings.New(cfg), nil
			}),
	)
	return cmd
}

// buildFunc makes a service's handler; logf is the per-request logger (-v).
type buildFunc func(cmd *cobra.Command, flags *flagpole, logf func(string, ...any)) (http.Handler, error)

func serviceCommand(env cliutil.Env, name, what string, flags *flagpole, build buildFunc) *cobra.Command {
	cmd := &cobra.Command{
		Use:   name,
		Short: "Serve bookinfo's " + name + ": " + what,
		Args:  cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := build(cmd, flags, env.Logger.V(1))
			if err != nil {
				return err
			}
			return serve(cmd.Context(), env, name, flags.Listen, h)
		},
	}
	cmd.Flags().StringVar(&flags.Listen, "listen", defaultListen, "address to listen on")
	return cmd
}

func reviewsCommand(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := serviceCommand(env, "reviews", "two reviews; v2 and v3 add ratings stars", flags,
		func(cmd *cobra.Command, f *flagpole, logf func(string, ...any)) (http.Handler, error) {
			cfg := reviews.ConfigFromEnv(os.Getenv)
			if f.Version != "" {
				if err := cfg.SetVersion(f.Version); err != nil {
					return nil, cliutil.Usagef("--service-version: %v", err)
				}
			}
			if cmd.Flags().Changed("enable-ratings") {
				cfg.EnableRatings = f.EnableRatings
			}
			if f.StarColor != "" {
				cfg.StarColor = f.StarColor
			}
			cfg.Logf = logf
			env.Logger.V(0)("reviews %s: ratings enabled %v, star colour %s, ratings at %s", cfg.Version, cfg.EnableRatings, cfg.StarColor, cfg.RatingsURL)
			return reviews.New(cfg), nil
		})
	fs := cmd.Flags()
	fs.StringVar(&flags.Version, "service-version", "", "v1 (no stars), v2 (black stars) or v3 (red stars); default from the environment")
	fs.BoolVar(&flags.EnableRatings, "enable-ratings", false, "call ratings and show stars (overrides ENABLE_RATINGS)")
	fs.StringVar(&flags.StarColor, "star-color", "", "colour of the stars (overrides STAR_COLOR)")
	return cmd
}

// serve runs h on addr until ctx ends or SIGTERM/SIGINT arrives, then drains in-flight requests.
func serve(ctx context.Context, env cliutil.Env, name, addr string, h http.Handler) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	env.Logger.V(0)("%s listening on %s", name, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving %s: %w", name, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutting down %s: %w", name, err)
	}
	env.Logger.V(1)("%s stopped", name)
	return nil
}
