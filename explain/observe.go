package explain

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// Observed is what one request sent on a running lab did, as the mesh's access logs tell it: the source
// ztunnel's outbound entry, the waypoint's request line, the destination ztunnel's inbound entry.
type Observed struct {
	RequestID string `json:"requestId"`
	// Status is the HTTP status the client got, 0 when it got none (ClientError says why).
	Status      int    `json:"status"`
	ClientError string `json:"clientError,omitempty"`
	// Local is the address the client sent from (pod IP:port), which the source ztunnel logs.
	Local    string            `json:"local,omitempty"`
	Ztunnel  *ObservedZtunnel  `json:"ztunnel,omitempty"`
	Waypoint *ObservedWaypoint `json:"waypoint,omitempty"`
	// Inbound is the destination ztunnel's entry (looked for only when no waypoint is on the path: a
	// waypoint keeps its upstream connections open, so their entries come later).
	Inbound *ObservedInbound `json:"inbound,omitempty"`
	// Lines are the log lines the facts were read from, and near misses.
	Lines []string `json:"lines,omitempty"`
}

// ObservedZtunnel is the source ztunnel's outbound access-log entry.
type ObservedZtunnel struct {
	Pod      string `json:"pod"`
	Node     string `json:"node"`
	Protocol string `json:"protocol"`
	// Via is where ztunnel connected (dst.addr: a waypoint's or the destination's HBONE port), Target
	// the CONNECT target (dst.hbone_addr).
	Via      string `json:"via"`
	Target   string `json:"target,omitempty"`
	Service  string `json:"service,omitempty"`
	Workload string `json:"workload,omitempty"`
	Identity string `json:"identity,omitempty"`
	Error    string `json:"error,omitempty"`
}

// ObservedWaypoint is the waypoint's request line.
type ObservedWaypoint struct {
	Waypoint            string `json:"waypoint"` // NAMESPACE/NAME of its Gateway
	Pod                 string `json:"pod"`
	Logged              bool   `json:"logged"` // false: no line with the request id
	Status              int    `json:"status,omitempty"`
	Flags               string `json:"flags,omitempty"`
	Route               string `json:"route,omitempty"`
	Cluster             string `json:"cluster,omitempty"`
	UpstreamHost        string `json:"upstreamHost,omitempty"`
	SourceIdentity      string `json:"sourceIdentity,omitempty"`
	DestinationIdentity string `json:"destinationIdentity,omitempty"`
}

// ObservedInbound is the destination ztunnel's inbound entry.
type ObservedInbound struct {
	Pod            string `json:"pod"`
	Workload       string `json:"workload,omitempty"`
	SourceIdentity string `json:"sourceIdentity,omitempty"`
	Error          string `json:"error,omitempty"`
}

// Comparison sets predicted and observed side by side, one row per fact.
type Comparison struct {
	Rows []Row `json:"rows"`
	// Same is true when no row differs.
	Same bool `json:"same"`
}

// Row is one fact, predicted and observed. Match is false when they differ.
type Row struct {
	Hop       string `json:"hop"`
	Fact      string `json:"fact"`
	Predicted string `json:"predicted"`
	Observed  string `json:"observed"`
	Match     bool   `json:"match"`
}

// Compare sets the prediction beside what the logs show. Where a prediction allows several answers
// (weighted clusters, round-robin endpoints) the observed one must be among them. Only ambient and
// uncaptured sources are compared: the logs read are ztunnels' and waypoints'.
func Compare(r *Report, o *Observed) Comparison {
	c := &comparer{r: r, o: o}
	c.source()
	if r.Proxy != nil && o.Waypoint != nil && r.Ztunnel != nil && r.Ztunnel.Waypoint != "" {
		c.waypoint()
	}
	c.destination()
	c.result()
	out := Comparison{Rows: c.rows, Same: true}
	for _, row := range c.rows {
		out.Same = out.Same && row.Match
	}
	return out
}

type comparer struct {
	r    *Report
	o    *Observed
	rows []Row
}

func (c *comparer) add(hop, fact, predicted, observed string, match bool) {
	c.rows = append(c.rows, Row{Hop: hop, Fact: fact, Predicted: predicted, Observed: observed, Match: match})
}

const none = "none"

// source compares the source ztunnel's decision: captured or not, the waypoint, where it connected.
func (c *comparer) source() {
	r, o := c.r, c.o
	z := r.Ztunnel
	switch {
	case z == nil && o.Ztunnel == nil:
		c.add("source", "captured by", "no ztunnel ("+r.Source.Capture+")", "no ztunnel logged the connection", true)
		return
	case z == nil:
		c.add("source", "captured by", "no ztunnel ("+r.Source.Capture+")", "ztunnel pod "+o.Ztunnel.Pod, false)
		return
	case o.Ztunnel == nil:
		c.add("source", "captured by", z.Proxy, "no ztunnel logged the connection", false)
		return
	}
	c.add("source", "captured by", z.Proxy, "ztunnel/"+o.Ztunnel.Node+" ("+o.Ztunnel.Pod+")", z.Proxy == "ztunnel/"+o.Ztunnel.Node)
	hop := z.Proxy
	predictedWP, observedWP := orNone(z.Waypoint), none
	if o.Waypoint != nil {
		observedWP = o.Waypoint.Waypoint
	}
	c.add(hop, "waypoint", predictedWP, observedWP, predictedWP == observedWP)
	if z.Error != "" || o.Ztunnel.Error != "" {
		c.add(hop, "error", orNone(z.Error), orNone(o.Ztunnel.Error), (z.Error == "") == (o.Ztunnel.Error == ""))
		return
	}
	if z.Waypoint != "" {
		c.add(hop, "HBONE target", z.Target, o.Ztunnel.Target, z.Target == o.Ztunnel.Target)
		c.add(hop, "waypoint identity", z.ExpectedIdentity, o.Ztunnel.Identity, z.ExpectedIdentity == o.Ztunnel.Identity)
		return
	}
	// Without a waypoint ztunnel picks an endpoint itself: it must be one of the predicted ones.
	var vias []string
	for _, b := range r.Backends {
		for _, ep := range b.Endpoints {
			if t, ok := strings.CutPrefix(ep.Tunnel, "HBONE to "); ok {
				vias = append(vias, t)
			} else {
				vias = append(vias, ep.Address)
			}
		}
	}
	c.add(hop, "connects to", oneOf(vias), o.Ztunnel.Via, contains(vias, o.Ztunnel.Via))
}

// waypoint compares the waypoint's choice: the route, the cluster and the endpoint.
func (c *comparer) waypoint() {
	r, o := c.r, c.o
	hop := r.Proxy.Proxy
	w := o.Waypoint
	if !w.Logged {
		c.add(hop, "request line", "one line with the request id", "none in "+w.Waypoint+"'s log", false)
		return
	}
	if r.Proxy.Route != nil || w.Route != "" {
		predicted := none
		if r.Proxy.Route != nil {
			predicted = r.Proxy.Route.Name
		}
		c.add(hop, "route", predicted, orNone(w.Route), predicted == orNone(w.Route))
	}
	if len(r.Backends) == 0 && w.Cluster == "" {
		return
	}
	var clusters []string
	for _, b := range r.Backends {
		clusters = append(clusters, b.Cluster)
	}
	c.add(hop, "cluster", oneOf(clusters), orNone(w.Cluster), contains(clusters, w.Cluster))
	for _, b := range r.Backends {
		if b.Cluster != w.Cluster {
			continue
		}
		var hosts []string
		for _, ep := range b.Endpoints {
			hosts = append(hosts, ep.Address)
		}
		c.add(hop, "endpoint", oneOf(hosts), orNone(w.UpstreamHost), contains(hosts, w.UpstreamHost))
	}
}

// destination compares the pod reached.
func (c *comparer) destination() {
	r, o := c.r, c.o
	var pods []string
	for _, b := range r.Backends {
		for _, ep := range b.Endpoints {
			if ep.Pod != "" && (ep.Inbound == nil || ep.Inbound.Allowed) && !contains(pods, ep.Pod) {
				pods = append(pods, ep.Pod)
			}
		}
	}
	if r.Result.Outcome != OutcomeForwarded {
		return // the request is predicted to stop before a pod; the result row says where
	}
	observed := ""
	switch {
	case o.Waypoint != nil && o.Waypoint.Logged:
		// The waypoint's upstream is envoy://connect_originate/IP:PORT: the pod behind that address.
		host := o.Waypoint.UpstreamHost
		if i := strings.LastIndex(host, "/"); i >= 0 {
			host = host[i+1:]
		}
		for _, b := range r.Backends {
			for _, ep := range b.Endpoints {
				if strings.HasSuffix(ep.Address, "/"+host) || ep.Address == host {
					observed = ep.Pod
				}
			}
		}
		if observed == "" && host != "" {
			observed = host + " (no predicted pod has this address)"
		}
	case o.Inbound != nil && o.Inbound.Workload != "":
		observed = o.Inbound.Workload
	case o.Ztunnel != nil && o.Ztunnel.Workload != "":
		observed = o.Ztunnel.Workload
	}
	if observed == "" {
		c.add("destination", "pod", oneOf(pods), "not in the logs", false)
		return
	}
	c.add("destination", "pod", oneOf(pods), observed, contains(pods, observed))
	if o.Inbound != nil && r.Ztunnel != nil && r.Ztunnel.Waypoint == "" {
		c.add("destination", "client identity", r.Source.Identity, orNone(o.Inbound.SourceIdentity), r.Source.Identity == o.Inbound.SourceIdentity)
	}
}

// result compares how the request ended: the status the mesh answers itself, or an answer from the app.
func (c *comparer) result() {
	r, o := c.r, c.o
	observed := fmt.Sprintf("HTTP %d", o.Status)
	if o.Status == 0 {
		observed = "no HTTP answer"
		if o.ClientError != "" {
			observed += " (" + o.ClientError + ")"
		}
	}
	switch {
	case r.Result.Status != 0:
		c.add("result", r.Result.Outcome, fmt.Sprintf("HTTP %d from the mesh", r.Result.Status), observed, o.Status == r.Result.Status)
	case r.Result.Outcome == OutcomeForwarded:
		c.add("result", r.Result.Outcome, "an answer from the app", observed, o.Status != 0)
	default:
		c.add("result", r.Result.Outcome, "the connection is closed", observed, o.Status == 0)
	}
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func oneOf(list []string) string {
	switch len(list) {
	case 0:
		return none
	case 1:
		return list[0]
	}
	sorted := append([]string(nil), list...)
	sort.Strings(sorted)
	return "one of " + strings.Join(sorted, ", ")
}

// WriteText prints the comparison as a table, each differing row flagged.
func (c Comparison) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "HOP\tFACT\tPREDICTED\tOBSERVED\tCHECK")
	for _, r := range c.Rows {
		flag := "="
		if !r.Match {
			flag = "DIFFERS"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Hop, r.Fact, r.Predicted, r.Observed, flag)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var err error
	if c.Same {
		_, err = io.WriteString(w, "\nobserved = predicted\n")
	} else {
		_, err = io.WriteString(w, "\nobserved differs from predicted\n")
	}
	return err
}
