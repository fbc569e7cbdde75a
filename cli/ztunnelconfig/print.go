package ztunnelconfig

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/dataplane/ztunnel/configdump"
)

// Dump is a decoded ztunnel config dump and its bytes (printed as they are by `all -o json`).
type Dump struct {
	configdump.Dump
	Raw []byte
}

// errNotADump marks bytes that are not a ztunnel config dump.
var errNotADump = errors.New("not a ztunnel config dump")

// Decode reads a config dump as ztunnel (or meshlab's ztunnel) serves it. Workloads, services,
// certificates and policies may be lists (current ztunnel) or maps keyed by name (older ztunnel), as
// istioctl accepts. Bytes that are no JSON object, or lack ztunnel's "workloads" and "services", or hold
// them in another shape, are errNotADump.
func Decode(b []byte) (Dump, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return Dump{}, fmt.Errorf("%w: %v", errNotADump, err)
	}
	if top["workloads"] == nil || top["services"] == nil {
		return Dump{}, fmt.Errorf("%w: it has no \"workloads\" and \"services\"", errNotADump)
	}
	d := Dump{Raw: b}
	parts := []struct {
		key  string
		into func(json.RawMessage) error
	}{
		{"workloads", func(m json.RawMessage) error { return listOrMap(m, &d.Workloads) }},
		{"services", func(m json.RawMessage) error { return listOrMap(m, &d.Services) }},
		{"policies", func(m json.RawMessage) error { return listOrMap(m, &d.Policies) }},
		{"certificates", func(m json.RawMessage) error { return listOrMap(m, &d.Certificates) }},
		{"workloadState", func(m json.RawMessage) error { return json.Unmarshal(m, &d.WorkloadState) }},
	}
	for _, p := range parts {
		m := top[p.key]
		if len(m) == 0 || string(m) == "null" {
			continue
		}
		if err := p.into(m); err != nil {
			return Dump{}, fmt.Errorf("%w: its %s are not in ztunnel's shape: %v", errNotADump, p.key, err)
		}
	}
	return d, nil
}

func listOrMap[T any](m json.RawMessage, into *[]T) error {
	if m = bytes.TrimSpace(m); len(m) > 0 && m[0] == '[' {
		return json.Unmarshal(m, into)
	}
	var byKey map[string]T
	if err := json.Unmarshal(m, &byKey); err != nil {
		return err
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		*into = append(*into, byKey[k])
	}
	return nil
}

// Filter narrows the tables as istioctl's filter flags do.
type Filter struct {
	WorkloadNamespace string // workloads and connections
	Address           string // workloads
	WorkloadNode      string // workloads
	ServiceNamespace  string // services
	PolicyNamespace   string // policies
	Direction         string // connections: inbound or outbound
	Raw               bool   // connections: addresses, not names
	WithHeaders       bool   // all
}

// Print writes one kind (workloads, services, policies, certificates, connections or all) in format
// "short" (istioctl's tables; "" and "table" too), "json" or "yaml".
func Print(w io.Writer, d Dump, kind, format string, f Filter) error {
	if format == "json" || format == "yaml" {
		return printDump(w, d, kind, format, f)
	}
	switch kind {
	case "workloads":
		return workloadTable(w, d, f)
	case "services":
		return serviceTable(w, d, f)
	case "policies":
		return policyTable(w, d, f)
	case "certificates":
		return certificateTable(w, d)
	case "connections":
		return connectionTable(w, d, f)
	}
	// all: every table after an empty line, optionally under a header, as istioctl prints them.
	sections := []struct {
		header string
		print  func() error
	}{
		{"WORKLOAD INFO", func() error { return workloadTable(w, d, Filter{}) }},
		{"SERVICE INFO", func() error { return serviceTable(w, d, Filter{}) }},
		{"POLICY INFO", func() error { return policyTable(w, d, Filter{}) }},
		{"SECRET INFO", func() error { return certificateTable(w, d) }},
		{"CONNECTIONS INFO", func() error { return connectionTable(w, d, Filter{}) }},
	}
	for _, s := range sections {
		fmt.Fprintln(w)
		if f.WithHeaders {
			fmt.Fprintf(w, "------ %s ------\n\n", s.header)
		}
		if err := s.print(); err != nil {
			return err
		}
	}
	return nil
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 8, 1, ' ', 0) }

func row(w io.Writer, cells ...any) {
	s := make([]string, len(cells))
	for i, c := range cells {
		s[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(w, strings.Join(s, "\t"))
}

func (f Filter) workload(wl configdump.Workload) bool {
	if f.WorkloadNamespace != "" && !strings.EqualFold(wl.Namespace, f.WorkloadNamespace) {
		return false
	}
	if f.Address != "" && !slices.ContainsFunc(wl.WorkloadIPs, func(ip string) bool { return strings.EqualFold(ip, f.Address) }) {
		return false
	}
	return f.WorkloadNode == "" || strings.EqualFold(wl.Node, f.WorkloadNode)
}

// sortedWorkloads orders as istioctl does: by "namespace.name" (one string), then node.
func sortedWorkloads(d Dump, f Filter) []configdump.Workload {
	ws := slices.DeleteFunc(append([]configdump.Workload{}, d.Workloads...), func(wl configdump.Workload) bool { return !f.workload(wl) })
	sort.Slice(ws, func(i, j int) bool {
		in, jn := ws[i].Namespace+"."+ws[i].Name, ws[j].Namespace+"."+ws[j].Name
		if in != jn {
			return in < jn
		}
		return ws[i].Node < ws[j].Node
	})
	return ws
}

func workloadTable(w io.Writer, d Dump, f Filter) error {
	tw := newTable(w)
	row(tw, "NAMESPACE", "POD NAME", "ADDRESS", "NODE", "WAYPOINT", "PROTOCOL")
	for _, wl := range sortedWorkloads(d, f) {
		address := strings.Join(wl.WorkloadIPs, ",")
		if address == "" {
			address = wl.Hostname
		}
		row(tw, wl.Namespace, wl.Name, address, wl.Node, waypointName(wl.Waypoint, d.Services), wl.Protocol)
	}
	return tw.Flush()
}

// waypointName names the service a waypoint destination ("namespace/hostname" or "network/IP") is.
func waypointName(g *configdump.GatewayAddress, services []configdump.Service) string {
	if g == nil {
		return "None"
	}
	for _, s := range services {
		if s.Namespace+"/"+s.Hostname == g.Destination || slices.Contains(s.VIPs, g.Destination) {
			return s.Name
		}
	}
	return "NA"
}

func sortedServices(d Dump, f Filter) []configdump.Service {
	ss := slices.DeleteFunc(append([]configdump.Service{}, d.Services...), func(s configdump.Service) bool {
		return f.ServiceNamespace != "" && !strings.EqualFold(s.Namespace, f.ServiceNamespace)
	})
	slices.SortStableFunc(ss, func(a, b configdump.Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Hostname, b.Hostname))
	})
	return ss
}

// serviceTable counts an endpoint healthy when its workload is known and Healthy, as istioctl does.
func serviceTable(w io.Writer, d Dump, f Filter) error {
	status := map[string]string{}
	for _, wl := range d.Workloads {
		status[wl.UID] = wl.Status
	}
	tw := newTable(w)
	row(tw, "NAMESPACE", "SERVICE NAME", "SERVICE VIP", "WAYPOINT", "ENDPOINTS")
	for _, s := range sortedServices(d, f) {
		ips := []string{}
		for _, v := range s.VIPs {
			_, ip, _ := strings.Cut(v, "/")
			ips = append(ips, ip)
		}
		healthy := 0
		for _, ep := range s.Endpoints {
			if st, ok := status[ep.WorkloadUID]; ok && st == "Healthy" {
				healthy++
			}
		}
		row(tw, s.Namespace, s.Name, strings.Join(ips, ","), waypointName(s.Waypoint, d.Services), fmt.Sprintf("%d/%d", healthy, len(s.Endpoints)))
	}
	return tw.Flush()
}

func sortedPolicies(d Dump, f Filter) []configdump.Policy {
	ps := slices.DeleteFunc(append([]configdump.Policy{}, d.Policies...), func(p configdump.Policy) bool {
		return f.PolicyNamespace != "" && !strings.EqualFold(p.Namespace, f.PolicyNamespace)
	})
	slices.SortStableFunc(ps, func(a, b configdump.Policy) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return ps
}

func policyTable(w io.Writer, d Dump, f Filter) error {
	tw := newTable(w)
	row(tw, "NAMESPACE", "POLICY NAME", "ACTION", "SCOPE")
	for _, p := range sortedPolicies(d, f) {
		row(tw, p.Namespace, p.Name, p.Action, p.Scope)
	}
	return tw.Flush()
}

// certificateTable prints every certificate of every identity (istioctl pads this table by 5). Serial
// numbers are decimal in the dump and hexadecimal here; an identity without certificates gets one row of NA.
func certificateTable(w io.Writer, d Dump) error {
	tw := tabwriter.NewWriter(w, 0, 8, 5, ' ', 0)
	row(tw, "CERTIFICATE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER", "NOT AFTER", "NOT BEFORE")
	now := time.Now()
	for _, c := range d.Certificates {
		state := c.State
		if strings.Contains(state, "Unavailable") {
			state = "Unavailable"
		}
		if len(c.CertChain) == 0 {
			row(tw, c.Identity, "NA", state, false, "NA", "NA", "NA")
			continue
		}
		legacy := len(c.RootCerts) == 0 // older ztunnel put the root at the end of the chain
		for i, cert := range c.CertChain {
			typ := "Intermediate"
			switch {
			case i == 0:
				typ = "Leaf"
			case i == len(c.CertChain)-1 && legacy:
				typ = "Root"
			}
			row(tw, c.Identity, typ, state, valid(cert, now), serialHex(cert.SerialNumber), orNA(cert.ExpirationTime), orNA(cert.ValidFrom))
		}
		for _, cert := range c.RootCerts {
			row(tw, c.Identity, "Root", state, valid(cert, now), serialHex(cert.SerialNumber), orNA(cert.ExpirationTime), orNA(cert.ValidFrom))
		}
	}
	return tw.Flush()
}

func serialHex(decimal string) string {
	n, ok := new(big.Int).SetString(decimal, 10)
	if !ok {
		return "<nil>" // what istioctl prints for a serial it cannot read
	}
	return fmt.Sprintf("%x", n)
}

func valid(c configdump.Cert, now time.Time) bool {
	from, err1 := time.Parse(time.RFC3339, c.ValidFrom)
	until, err2 := time.Parse(time.RFC3339, c.ExpirationTime)
	return err1 == nil && err2 == nil && now.After(from) && now.Before(until)
}

func orNA(s string) string {
	if s == "" {
		return "NA"
	}
	return s
}

// sortedStates orders served pods by namespace and name.
func sortedStates(d Dump, f Filter) []configdump.WorkloadState {
	out := []configdump.WorkloadState{}
	for _, s := range d.WorkloadState {
		if f.WorkloadNamespace == "" || f.WorkloadNamespace == s.Info.Namespace {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b configdump.WorkloadState) int {
		return cmp.Or(cmp.Compare(a.Info.Namespace, b.Info.Namespace), cmp.Compare(a.Info.Name, b.Info.Name))
	})
	return out
}

// connectionTable shows each served pod's inbound then outbound connections, with addresses named after
// the service (by its first VIP) or workload (by its first IP) they belong to unless f.Raw.
func connectionTable(w io.Writer, d Dump, f Filter) error {
	services, workloads := map[string]string{}, map[string]string{}
	for _, s := range d.Services {
		ip := "None"
		if len(s.VIPs) > 0 {
			if _, v, _ := strings.Cut(s.VIPs[0], "/"); v != "" {
				ip = v
			}
		}
		services[ip] = s.Hostname
	}
	for _, wl := range d.Workloads {
		ip := "None"
		if len(wl.WorkloadIPs) > 0 && wl.WorkloadIPs[0] != "" {
			ip = wl.WorkloadIPs[0]
		}
		workloads[ip] = wl.Name + "." + wl.Namespace
	}
	lookup := func(addr string) string {
		if f.Raw {
			return addr
		}
		ip, port, _ := net.SplitHostPort(addr)
		if s, ok := services[ip]; ok {
			return net.JoinHostPort(s, port)
		}
		if s, ok := workloads[ip]; ok {
			return net.JoinHostPort(s, port)
		}
		return addr
	}
	tw := newTable(w)
	row(tw, "WORKLOAD", "DIRECTION", "LOCAL", "REMOTE", "REMOTE TARGET", "PROTOCOL")
	for _, s := range sortedStates(d, f) {
		if s.Connections == nil {
			continue
		}
		name := s.Info.Name + "." + s.Info.Namespace
		if f.Direction != "outbound" {
			for _, c := range s.Connections.Inbound {
				target := ""
				if c.OriginalDst != nil {
					target = *c.OriginalDst
				}
				row(tw, name, "Inbound", lookup(c.ActualDst), lookup(c.Src), target, c.Protocol)
			}
		}
		if f.Direction != "inbound" {
			for _, c := range s.Connections.Outbound {
				row(tw, name, "Outbound", lookup(c.Src), lookup(c.ActualDst), lookup(c.OriginalDst), c.Protocol)
			}
		}
	}
	return tw.Flush()
}

// printDump writes a kind's entries (filtered and sorted as its table) as JSON indented by four spaces, or
// YAML, as istioctl does; all is the dump as it was read.
func printDump(w io.Writer, d Dump, kind, format string, f Filter) error {
	var v any
	switch kind {
	case "workloads":
		v = sortedWorkloads(d, f)
	case "services":
		v = sortedServices(d, f)
	case "policies":
		v = sortedPolicies(d, f)
	case "certificates":
		v = d.Certificates
	case "connections":
		v = sortedStates(d, f)
	}
	out := d.Raw
	if v != nil {
		var err error
		if out, err = json.MarshalIndent(v, "", "    "); err != nil {
			return err
		}
	}
	if format == "yaml" {
		var err error
		if out, err = yaml.JSONToYAML(out); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, string(out))
	return err
}
