package tables

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// now is the time certificates are checked against (a seam for tests).
var now = time.Now

// BootstrapSummary prints the Istio and Envoy versions of the bootstrap, as istioctl does (`proxy-config
// bootstrap -o short`, and the head of `all`).
func BootstrapSummary(w io.Writer, d *Dump) error {
	node := d.Bootstrap.GetBootstrap().GetNode()
	md := node.GetMetadata().GetFields()
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	if v := md["ISTIO_VERSION"].GetStringValue(); v != "" {
		fmt.Fprintf(tw, "Istio Version:\t%s\n", v)
	}
	if sha := md["ISTIO_PROXY_SHA"].GetStringValue(); sha != "" {
		if parts := strings.Split(sha, ":"); len(parts) > 1 {
			sha = parts[1]
		}
		fmt.Fprintf(tw, "Istio Proxy Version:\t%s\n", sha)
	}
	if d.Bootstrap != nil {
		bv := node.GetUserAgentBuildVersion()
		v, bmd := bv.GetVersion(), bv.GetMetadata().GetFields()
		var sb strings.Builder
		fmt.Fprintf(&sb, "%d.%d.%d", v.GetMajorNumber(), v.GetMinorNumber(), v.GetPatch())
		for _, k := range []struct{ key, sep string }{{"build.label", "-"}, {"revision.status", "/"}, {"build.type", "/"}, {"ssl.version", "/"}} {
			if f, ok := bmd[k.key]; ok {
				sb.WriteString(k.sep + f.GetStringValue())
			}
		}
		fmt.Fprintf(tw, "Envoy Version:\t%s\n", sb.String())
	}
	return tw.Flush()
}

// secretRow is one line of the secrets table.
type secretRow struct {
	name, typ, state, serial, notAfter, notBefore, trustDomain string
	valid                                                      bool
}

// secretRows reads the dynamic secrets as istioctl does: warming, then active; a certificate chain, else a
// trusted CA, else one row per SPIFFE trust domain.
func secretRows(d *Dump) []secretRow {
	var rows []secretRow
	add := func(s *adminv3.SecretsConfigDump_DynamicSecret, state string) {
		if state == "ACTIVE" && s.GetVersionInfo() == "uninitialized" {
			state = "UNINITIALIZED"
		}
		sec := &tlsv3.Secret{}
		if err := s.GetSecret().UnmarshalTo(sec); err != nil {
			return
		}
		data := sec.GetTlsCertificate().GetCertificateChain().GetInlineBytes()
		if len(data) == 0 {
			data = sec.GetValidationContext().GetTrustedCa().GetInlineBytes()
		}
		if len(data) == 0 {
			if cv := sec.GetValidationContext().GetCustomValidatorConfig(); cv != nil {
				sp := &tlsv3.SPIFFECertValidatorConfig{}
				if cv.GetTypedConfig().UnmarshalTo(sp) == nil {
					for _, td := range sp.GetTrustDomains() {
						rows = append(rows, certRow(s.GetName(), state, td.GetTrustBundle().GetInlineBytes(), td.GetName()))
					}
					return
				}
			}
		}
		rows = append(rows, certRow(s.GetName(), state, data, ""))
	}
	for _, s := range d.Secrets.GetDynamicWarmingSecrets() {
		add(s, "WARMING")
	}
	for _, s := range d.Secrets.GetDynamicActiveSecrets() {
		add(s, "ACTIVE")
	}
	return rows
}

func certRow(name, state string, data []byte, trustDomain string) secretRow {
	r := secretRow{name: name, state: state, trustDomain: trustDomain}
	block, _ := pem.Decode(data)
	if block == nil {
		return r
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return r
	}
	r.typ = "Cert Chain"
	if cert.IsCA {
		r.typ = "CA"
	}
	if r.trustDomain == "" {
		for _, u := range cert.URIs {
			if u.Scheme == "spiffe" {
				r.trustDomain = u.Host
			}
		}
	}
	t := now()
	r.serial = fmt.Sprintf("%032x", cert.SerialNumber)
	r.notAfter, r.notBefore = cert.NotAfter.Format(time.RFC3339), cert.NotBefore.Format(time.RFC3339)
	r.valid = t.After(cert.NotBefore) && t.Before(cert.NotAfter)
	return r
}

// Secrets prints istioctl's secrets table (RESOURCE NAME TYPE STATUS VALID CERT SERIAL NUMBER NOT AFTER
// NOT BEFORE, and TRUST DOMAIN when every secret has one); named prefixes the names with secret/.
func Secrets(w io.Writer, d *Dump, named bool) error {
	if len(d.Secrets.GetDynamicActiveSecrets()) == 0 && len(d.Secrets.GetDynamicWarmingSecrets()) == 0 {
		_, err := fmt.Fprintln(w, "No active or warming secrets found.")
		return err
	}
	rows := secretRows(d)
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "No secret items to show.")
		return err
	}
	withTD := true
	for _, r := range rows {
		withTD = withTD && r.trustDomain != ""
	}
	tw := tabwriter.NewWriter(w, 0, 5, 5, ' ', 0)
	header := "RESOURCE NAME\tTYPE\tSTATUS\tVALID CERT\tSERIAL NUMBER\tNOT AFTER\tNOT BEFORE"
	if withTD {
		header += "\tTRUST DOMAIN"
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		name := r.name
		if named {
			name = "secret/" + name
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\t%s", name, r.typ, r.state, r.valid, r.serial, r.notAfter, r.notBefore)
		if withTD {
			fmt.Fprintf(tw, "\t%s", r.trustDomain)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// edsEndpoints prints the EDS section's endpoints as istioctl's `all` does: NAME (endpoint/ADDRESSES)
// STATUS LOCALITY CLUSTER, assignments ordered by cluster name as clusters are.
func edsEndpoints(w io.Writer, d *Dump) error {
	clas := append([]*endpointv3.ClusterLoadAssignment(nil), d.Endpoints...)
	key := func(name string) (string, string, int, string) {
		if dir, port, subset, host, ok := ParseClusterName(name); ok {
			p, _ := strconv.Atoi(port)
			return host, subset, p, dir
		}
		return name, "", 0, ""
	}
	sort.SliceStable(clas, func(i, j int) bool {
		hi, si, pi, di := key(clas[i].GetClusterName())
		hj, sj, pj, dj := key(clas[j].GetClusterName())
		if hi != hj {
			return hi < hj
		}
		if si != sj {
			return si < sj
		}
		if pi != pj {
			return pi < pj
		}
		return di < dj
	})
	tw := tabwriter.NewWriter(w, 0, 8, 5, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tLOCALITY\tCLUSTER")
	for _, cla := range clas {
		for _, loc := range cla.GetEndpoints() {
			for _, ep := range loc.GetLbEndpoints() {
				addrs := []string{dumpEndpointAddress(ep.GetEndpoint().GetAddress())}
				for _, a := range ep.GetEndpoint().GetAdditionalAddresses() {
					addrs = append(addrs, dumpEndpointAddress(a.GetAddress()))
				}
				fmt.Fprintf(tw, "endpoint/%s\t%s\t%s\t%s\n", strings.Join(addrs, ","), ep.GetHealthStatus(), locality(loc.GetLocality()), cla.GetClusterName())
			}
		}
	}
	return tw.Flush()
}

func locality(l *corev3.Locality) string {
	if l == nil {
		return ""
	}
	out := l.GetRegion()
	if l.GetZone() == "" {
		return out
	}
	out += "/" + l.GetZone()
	if l.GetSubZone() == "" {
		return out
	}
	return out + "/" + l.GetSubZone()
}
