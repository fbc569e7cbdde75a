// Command meshlab is the one binary of the meshlab service-mesh sandbox: the CLI a user runs and every
// component it deploys (control plane, proxies, bookinfo, sleep) as a subcommand.
package main

import (
	"os"

	"github.com/meshlab/meshlab/cli"
)

func main() {
	os.Exit(cli.Main())
}
