package nft_test

import (
	"strings"
	"testing"

	"github.com/meshlab/meshlab/dataplane/nft"
)

func TestTranslateSpec(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"-p tcp -j REDIRECT --to-ports 15001", "meta l4proto tcp redirect to :15001"},
		{"! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006",
			"ip daddr != 127.0.0.1 tcp dport != 15008 meta mark & 0x00000fff != 0x00000539 redirect to :15006"},
		{"-m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff",
			"meta mark & 0x00000fff == 0x00000539 ct mark set ct mark & 0xfffff000 ^ 0x00000111"},
		{"-m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff",
			"ct mark & 0x00000fff == 0x00000111 meta mark set ct mark"},
		{"-p tcp -m mark --mark 1337 -j CONNMARK --save-mark", "meta l4proto tcp meta mark 0x00000539 ct mark set meta mark"},
		{"-m owner --uid-owner 1337 -j RETURN", "meta skuid 1337 return"},
		{"-o lo -m owner ! --gid-owner 1337 -j RETURN", `oifname "lo" meta skgid != 1337 return`},
		{"-o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT",
			`oifname "lo" ip daddr != 127.0.0.1 tcp dport != 15008 meta skuid 1337 jump ISTIO_IN_REDIRECT`},
		{"-p tcp -m multiport --dports 5432,6379 -j RETURN", "tcp dport { 5432, 6379 } return"},
		{"-p tcp --dport 15000:15010 -j RETURN", "tcp dport 15000-15010 return"},
		{"-p tcp -s 127.0.0.6/32 -i veth+ -j RETURN", `meta l4proto tcp ip saddr 127.0.0.6 iifname "veth*" return`},
		{"-d 10.96.0.0/12 -j ISTIO_REDIRECT", "ip daddr 10.96.0.0/12 jump ISTIO_REDIRECT"},
		{"-p tcp --dport 9080 -m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT",
			"tcp dport 9080 ct state related,established jump ISTIO_DIVERT"},
		{"-j MARK --set-mark 1337", "meta mark set 0x00000539"},
		{"-j ACCEPT", "accept"},
		// TPROXY accepts, or drops when no transparent socket listens: two nft rules.
		{"! -d 127.0.0.1/32 -p tcp -j TPROXY --tproxy-mark 1337/0xffffffff --on-port 15006",
			"ip daddr != 127.0.0.1 meta l4proto tcp tproxy to :15006 meta mark set 0x00000539 accept\n" +
				"ip daddr != 127.0.0.1 meta l4proto tcp drop"},
	} {
		rules, err := nft.TranslateSpec(tc.spec)
		if err != nil {
			t.Errorf("TranslateSpec(%q) = %v", tc.spec, err)
			continue
		}
		var got []string
		for _, r := range rules {
			got = append(got, r.String())
		}
		if g := strings.Join(got, "\n"); g != tc.want {
			t.Errorf("TranslateSpec(%q):\n got %s\nwant %s", tc.spec, g, tc.want)
		}
	}
}

func TestTranslateRejects(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"-p icmp -j ACCEPT", "only tcp and udp"},
		{"--dport 80 -j ACCEPT", "needs -p"},
		{"-m string --string x -j DROP", "unsupported match"},
		{"-j MASQUERADE", "unsupported target"},
		{"-j DNAT --to-destination 1.2.3.4", "unsupported target"},
		{"-j REDIRECT --to-ports 15001-15002", "one port"},
		{"-d fd00::/8 -j RETURN", "only IPv4"},
		{"-m owner --uid-owner istio -j RETURN", "numeric"},
		{"-j CONNMARK --restore-mark --nfmask 0xff", "full masks"},
		{"! -m mark --mark 1 -j RETURN", "not supported"},
		{"-p tcp !", "dangling"},
	} {
		if _, err := nft.TranslateSpec(tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("TranslateSpec(%q) = %v, want an error containing %q", tc.spec, err, tc.want)
		}
	}
}

func TestFromIPTables(t *testing.T) {
	rules, err := nft.ParseRestore(`*mangle
:ISTIO_PRERT - [0:0]
-A ISTIO_PRERT -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff
-A PREROUTING -j ISTIO_PRERT
-A OUTPUT -m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark
COMMIT
*nat
-A OUTPUT -p tcp -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -p tcp -j REDIRECT --to-ports 15001
COMMIT
`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := nft.FromIPTables("test", rules)
	if err != nil {
		t.Fatal(err)
	}
	want := `table ip test-mangle {
	chain prerouting {
		type filter hook prerouting priority mangle; policy accept;
		jump ISTIO_PRERT
	}

	chain output {
		type route hook output priority mangle; policy accept;
		ct mark & 0x00000fff == 0x00000111 meta mark set ct mark
	}

	chain ISTIO_PRERT {
		meta mark & 0x00000fff == 0x00000539 ct mark set ct mark & 0xfffff000 ^ 0x00000111
	}
}

table ip test-nat {
	chain output {
		type nat hook output priority dstnat; policy accept;
		meta l4proto tcp jump ISTIO_OUTPUT
	}

	chain ISTIO_OUTPUT {
		meta l4proto tcp redirect to :15001
	}
}
`
	if got := nft.Render(tables); got != want {
		t.Errorf("FromIPTables():\n%s\nwant:\n%s", got, want)
	}

	if _, err := nft.FromIPTables("test", []nft.IPTablesRule{{"nat", "OUTPUT", "-j ISTIO_MISSING"}}); err == nil ||
		!strings.Contains(err.Error(), "unknown chain ISTIO_MISSING") {
		t.Errorf("jump to a missing chain: %v", err)
	}
	if _, err := nft.FromIPTables("test", []nft.IPTablesRule{{"security", "OUTPUT", "-j ACCEPT"}}); err == nil {
		t.Errorf("security table: no error")
	}
}
