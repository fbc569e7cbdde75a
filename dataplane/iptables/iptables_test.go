package iptables

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/internal/golden"
)

// injected is what the injection template passes: -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x "" -b '*'
// -d 15090,15021,15020.
func injected(mode Mode) Config {
	c := DefaultConfig()
	c.Mode = mode
	c.OutboundIPRangesInclude, c.InboundPortsInclude, c.InboundPortsExclude = "*", "*", "15090,15021,15020"
	return c
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func() Config
	}{
		{"redirect", func() Config { return injected(Redirect) }},
		{"tproxy", func() Config { return injected(TProxy) }},
		{"redirect-ranges-ports", func() Config {
			c := injected(Redirect)
			c.OutboundIPRangesInclude, c.OutboundIPRangesExclude = "10.96.0.0/12,10.244.0.0/16", "10.96.0.1/32"
			c.InboundPortsInclude, c.OutboundPortsExclude = "9080,9443", "5432,6379"
			c.ProxyGIDs = []string{"1337,2000"}
			return c
		}},
		{"tproxy-ports", func() Config {
			c := injected(TProxy)
			c.InboundPortsInclude, c.OutboundPortsExclude = "9080", "5432"
			return c
		}},
		{"nothing-captured", DefaultConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Build(tc.cfg())
			if err != nil {
				t.Fatalf("Build() = %v", err)
			}
			nftRules, err := rs.NFTString()
			if err != nil {
				t.Fatalf("NFTString() = %v", err)
			}
			got := rs.String() + "--- iptables-restore input ---\n" + rs.RestoreInput() + "--- nftables (nft-native) ---\n" + nftRules
			path := filepath.Join("testdata", tc.name+".golden")
			golden.Check(t, path, []byte(got))
		})
	}
}

func TestBuildRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"mode", func(c *Config) { c.Mode = "NAT" }, "unknown interception mode"},
		{"uid", func(c *Config) { c.ProxyUIDs = []string{"istio-proxy"} }, "-u"},
		{"inbound port", func(c *Config) { c.InboundPortsInclude = "80,http" }, "-b"},
		{"excluded wildcard", func(c *Config) { c.InboundPortsExclude = "*" }, "not allowed"},
		{"outbound port range", func(c *Config) { c.OutboundPortsExclude = "70000" }, "-o"},
		{"cidr", func(c *Config) { c.OutboundIPRangesInclude = "10.0.0.0/33" }, "-i"},
		{"ipv6", func(c *Config) { c.OutboundIPRangesExclude = "fd00::/8" }, "only IPv4"},
		{"proxy port", func(c *Config) { c.ProxyPort = 0 }, "-p"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := injected(Redirect)
			tc.mod(&c)
			if _, err := Build(c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
