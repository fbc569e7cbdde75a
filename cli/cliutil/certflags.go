package cliutil

import (
	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/dataplane/proxyboot"
)

// AddCertFlags registers --ca-address (defaulting to caAddress), --cert-dir, --token-path and --root-cert
// on a proxy command, filling c.
func AddCertFlags(cmd *cobra.Command, c *proxyboot.CertSource, caAddress string) {
	fl := cmd.Flags()
	fl.StringVar(&c.CAAddress, "ca-address", caAddress, "control plane CA address (TLS); unused with --cert-dir")
	fl.StringVar(&c.CertDir, "cert-dir", "", "read "+proxyboot.CertChainFile+", "+proxyboot.KeyFile+" and "+proxyboot.RootCertFile+" from this directory instead of asking the CA")
	fl.StringVar(&c.TokenPath, "token-path", proxyboot.DefaultTokenPath, "projected service-account token shown to the CA")
	fl.StringVar(&c.RootCert, "root-cert", proxyboot.DefaultRootCertPath, "the mesh root certificate (PEM), without --cert-dir")
}
