package checks

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/internal/scriptrun"
	"github.com/meshlab/meshlab/labs"
	"github.com/meshlab/meshlab/log"
	"github.com/meshlab/meshlab/scenarios"
)

// Defaults of a run.
const (
	DefaultParallel    = 4                // check files at once
	DefaultFileTimeout = 10 * time.Minute // one file, rollouts and traffic samples included (teardown apart)
)

// Options say where and how check files run.
type Options struct {
	// Offline runs the config assertions on rendered config (Base plus what the files apply); commands
	// that need a cluster are reported as skipped.
	Offline bool
	Base    map[ingest.Key]ingest.Object // --offline -f objects (LoadBase)

	Env *scenarios.Env // the lab (live)
	Lab labs.Config    // the labs' command settings (live): meshlab binary, cluster name, kubectl

	Parallel  int           // files at once (default DefaultParallel)
	BundleDir string        // failure bundles (default scenarios.DefaultBundleDir)
	Timeout   time.Duration // per file (default DefaultFileTimeout)
	// ConvergeTimeout bounds each wait for the lab to converge: every proxy acknowledging a change, an
	// applied waypoint connecting, a rollout completing (default scenarios.DefaultConvergeTimeout). A lab
	// that never gets there ends the file as an environment error (exit 2), not a failed check.
	ConvergeTimeout time.Duration
	Traffic         Traffic  // default DefaultTraffic
	Logf            log.Logf // progress lines
	Debugf          log.Logf // every file's log lines as they happen

	suffix func() string // namespace suffix; replaceable in tests
}

// Namespace returns the namespace a file runs in: test-<name>-<4 random chars> live, OfflineNamespace
// offline.
func (o *Options) namespace(f *File) string {
	if o.Offline {
		return OfflineNamespace
	}
	s := o.suffix
	if s == nil {
		s = randomSuffix
	}
	return "test-" + f.Name + "-" + s()
}

func randomSuffix() string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// Run runs check files, in parallel where they share no namespace but their own, and reports each as a
// scenario result, in the order given.
func Run(ctx context.Context, opts Options, files []*File) *scenarios.Report {
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	if opts.Traffic == nil {
		opts.Traffic = DefaultTraffic
	}
	runner := &scenarios.Runner{Env: opts.Env, BundleDir: opts.BundleDir, Timeout: opts.Timeout, Logf: opts.Logf, Debugf: opts.Debugf}
	rep := &scenarios.Report{Start: time.Now(), Results: make([]scenarios.Result, len(files))}
	if opts.Env != nil {
		rep.Cluster = opts.Env.Cluster
	}
	locks := map[string]*sync.Mutex{}
	for _, f := range files {
		for _, ns := range f.Shared {
			if locks[ns] == nil {
				locks[ns] = &sync.Mutex{}
			}
		}
	}
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Shared namespaces are locked in sorted order (f.Shared is sorted), so files never deadlock.
			for _, ns := range f.Shared {
				locks[ns].Lock()
				defer locks[ns].Unlock()
			}
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				rep.Results[i] = scenarios.Result{Name: f.Name, Description: f.Title, Status: scenarios.StatusSkipped, SkipReason: "not run: " + context.Cause(ctx).Error()}
				return
			}
			rep.Results[i] = runner.RunOne(ctx, scenarioFor(f, &opts))
		}()
	}
	wg.Wait()
	rep.Duration = time.Since(rep.Start)
	return rep
}

// scenarioFor turns a check file into a scenario: Setup creates its namespace, Check runs its script.
func scenarioFor(f *File, opts *Options) *scenarios.Scenario {
	fr := &fileRun{file: f, opts: opts, ns: opts.namespace(f)}
	if opts.Offline {
		fr.backend = newOffline(opts.Base)
	} else {
		fr.backend = &live{timeout: opts.ConvergeTimeout}
	}
	return &scenarios.Scenario{
		Name:        f.Name,
		Description: f.Title,
		Timeout:     DefaultFileTimeout,
		Setup:       func(t *scenarios.T) { fr.backend.setup(t, fr.ns, f.Dataplane) },
		Wait:        func(*scenarios.T) {}, // every command waits for convergence itself
		Check:       fr.check,
	}
}

// fileRun is one check file running.
type fileRun struct {
	file    *File
	opts    *Options
	ns      string
	backend backend
	t       *scenarios.T

	ran, skipped []string // commands that ran, and those skipped (with why)
}

// commandLine matches a line's prefixes (`!`, [conditions]) and its command word.
var commandLine = regexp.MustCompile(`^(\s*(?:!\s+)?(?:\[[^\]]*\]\s+)*)(\S+)`)

// script returns the file's script as testscript runs it: each meshlab command renamed NAME@LINE so its
// handler knows its line; --offline, commands that need a cluster (and the output assertions reading
// their output) become offline-skip@LINE.
func (fr *fileRun) script() []byte {
	lines := strings.Split(string(fr.file.Script), "\n")
	skipping := false // the last command was skipped: its stdout/stderr assertions are too
	for _, l := range fr.file.Lines {
		name := l.Name()
		cls, _ := classOf(name)
		offlineSkip := fr.opts.Offline && (cls == classCluster || cls == classTraffic ||
			(skipping && (name == "stdout" || name == "stderr" || name == "grep" || name == "cmp" || name == "cmpenv")))
		i := l.N - 1
		switch {
		case offlineSkip:
			lines[i] = fmt.Sprintf("offline-skip@%d", l.N)
			skipping = true
			continue
		case specs[name] != nil:
			lines[i] = commandLine.ReplaceAllString(lines[i], fmt.Sprintf("${1}%s@%d", name, l.N))
		}
		if name != "stdout" && name != "stderr" && name != "grep" && name != "cmp" && name != "cmpenv" {
			skipping = false
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

// commands are the handlers for this file's lines.
func (fr *fileRun) commands() map[string]func(*testscript.TestScript, bool, []string) {
	cmds := map[string]func(*testscript.TestScript, bool, []string){}
	for _, l := range fr.file.Lines {
		name := l.Name()
		cls, _ := classOf(name)
		switch {
		case fr.opts.Offline && (cls == classCluster || cls == classTraffic || cls == classBuiltin):
			cmds[fmt.Sprintf("offline-skip@%d", l.N)] = fr.offlineSkip(l)
		}
		if specs[name] != nil {
			cmds[fmt.Sprintf("%s@%d", name, l.N)] = fr.handler(l)
		}
	}
	return cmds
}

func (fr *fileRun) phaseName(l Line) string { return fmt.Sprintf("%d: %s", l.N, l.Text) }

func (fr *fileRun) offlineSkip(l Line) func(*testscript.TestScript, bool, []string) {
	return func(*testscript.TestScript, bool, []string) {
		why := "needs a cluster"
		if cls, _ := classOf(l.Name()); cls == classTraffic {
			why = "sends traffic: needs a cluster"
		} else if cls == classBuiltin {
			why = "reads the output of a command skipped --offline"
		}
		fr.t.Phase(fr.phaseName(l), func() { fr.t.Skipf("--offline: %s", why) })
		fr.skipped = append(fr.skipped, fmt.Sprintf("line %d %s", l.N, l.Name()))
	}
}

// handler runs one meshlab command line as a phase of the scenario; a failed phase stops the script.
func (fr *fileRun) handler(l Line) func(*testscript.TestScript, bool, []string) {
	return func(ts *testscript.TestScript, neg bool, args []string) {
		t := fr.t
		stopped, aborted := false, false
		func() {
			defer func() {
				if r := recover(); r != nil {
					if !scenarios.IsAbort(r) {
						panic(r)
					}
					aborted = true // Abortf: stop the script here; the report says not judged
				}
			}()
			t.Phase(fr.phaseName(l), func() {
				defer func() {
					if r := recover(); r != nil {
						stopped = true
						panic(r) // Phase records the failure or skip
					}
				}()
				fr.exec(ts, l, neg, args)
			})
		}()
		switch {
		case aborted:
			ts.Fatalf("%s: the lab never converged (not judged; see the report)", l.Name())
		case t.Failed():
			ts.Fatalf("%s failed (expected vs seen in the report)", l.Name())
		case stopped:
			fr.skipped = append(fr.skipped, fmt.Sprintf("line %d %s", l.N, l.Name()))
		default:
			fr.ran = append(fr.ran, l.Name())
		}
	}
}

// check runs the file's script with testscript, in a work directory holding its embedded files.
func (fr *fileRun) check(t *scenarios.T) {
	fr.t = t
	dir, err := os.MkdirTemp("", "meshlab-test-")
	t.Must(err, "creating a work directory")
	defer os.RemoveAll(dir)
	p, err := fr.params(dir)
	t.Must(err, "preparing the script")
	root := scriptrun.Run(fr.file.Name, p)
	if root.Failed() {
		log := strings.ReplaceAll(root.Logs(), filepath.Join(dir, fr.file.Name+".txtar"), fr.file.Path)
		t.Logf("script log:\n%s", log)
		if !t.Failed() { // a testscript command (stdout, exec, kubectl...) failed, not a meshlab assertion
			t.Expect(false, fmt.Sprintf("%s: a command failed", fr.file.Path), "the script to pass", lastLines(log, 12))
		}
		return
	}
	if len(fr.ran) == 0 && len(fr.skipped) > 0 {
		if fr.opts.Offline {
			t.Skipf("--offline: nothing in this file runs without a cluster (skipped: %s)", strings.Join(fr.skipped, ", "))
		}
		t.Skipf("every check was skipped (%s)", strings.Join(fr.skipped, ", "))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (fr *fileRun) params(dir string) (testscript.Params, error) {
	lab := labs.Lab{Name: fr.file.Name, Title: fr.file.Title, Script: fr.script()}
	var p testscript.Params
	if fr.opts.Offline {
		file := filepath.Join(dir, fr.file.Name+".txtar")
		if err := os.WriteFile(file, lab.Script, 0o644); err != nil {
			return p, err
		}
		p = testscript.Params{Files: []string{file}, RequireExplicitExec: true, Cmds: map[string]func(*testscript.TestScript, bool, []string){}}
	} else {
		var err error
		if p, err = fr.opts.Lab.Params(lab, dir); err != nil {
			return p, err
		}
	}
	for name, fn := range fr.commands() {
		p.Cmds[name] = fn
	}
	p.WorkdirRoot = filepath.Join(dir, "work")
	if err := os.MkdirAll(p.WorkdirRoot, 0o755); err != nil {
		return p, err
	}
	setup := p.Setup
	p.Setup = func(env *testscript.Env) error {
		if setup != nil {
			if err := setup(env); err != nil {
				return err
			}
		}
		env.Setenv("NS", fr.ns)
		return nil
	}
	return p, nil
}

// clusterScoped kinds get no namespace from the file.
var clusterScoped = map[string]bool{"Namespace": true, "GatewayClass": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"CustomResourceDefinition": true, "MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true,
	"PersistentVolume": true, "StorageClass": true, "PriorityClass": true, "Node": true}

// objectsOf reads an embedded file with $NS replaced by the file's namespace; objects without a namespace
// go into it. It also writes that text to .resolved/NAME in the work directory (the offline loader reads
// files) and returns the path.
func (fr *fileRun) objectsOf(ts *testscript.TestScript, name string) ([]*unstructured.Unstructured, string) {
	var raw string
	if _, embedded := fr.file.Files[name]; embedded {
		raw = ts.ReadFile(name)
	} else { // beside the check file
		data, err := os.ReadFile(fr.file.beside(name))
		fr.t.Must(err, "reading "+name)
		raw = string(data)
	}
	text := strings.NewReplacer("${NS}", fr.ns, "$NS", fr.ns).Replace(raw)
	objs, err := scenarios.DecodeYAML(text)
	if err != nil {
		fr.t.Fatalf("%s: %v", name, err)
	}
	for _, u := range objs {
		if u.GetNamespace() == "" && !clusterScoped[u.GetKind()] {
			u.SetNamespace(fr.ns)
		}
	}
	path := filepath.Join(ts.MkAbs(".resolved"), filepath.Base(name))
	fr.t.Must(os.MkdirAll(filepath.Dir(path), 0o755), "creating .resolved")
	fr.t.Must(os.WriteFile(path, []byte(text), 0o644), "writing "+path)
	return objs, path
}

// exec runs one meshlab command with its arguments expanded.
func (fr *fileRun) exec(ts *testscript.TestScript, l Line, neg bool, args []string) {
	t := fr.t
	s := specs[l.Name()]
	c, err := parseCall(s, args)
	if err != nil {
		t.Fatalf("%v", err)
	}
	switch l.Name() {
	case "apply":
		for _, name := range c.pos {
			objs, path := fr.objectsOf(ts, name)
			fr.backend.apply(t, name, path, objs)
		}
	case "delete":
		var all []*unstructured.Unstructured
		for _, name := range c.pos {
			objs, _ := fr.objectsOf(ts, name)
			all = append(all, objs...)
		}
		fr.backend.remove(t, all)
	case "ready":
		timeout := DefaultReadyTimeout
		if v, ok := c.flag("-timeout"); ok {
			timeout, _ = time.ParseDuration(v)
		}
		for _, d := range c.pos {
			fr.backend.ready(t, fr.ns, strings.TrimPrefix(d, "deploy/"), timeout)
		}
	case "route":
		fr.route(c)
	case "cluster":
		fr.cluster(c)
	case "holds":
		fr.holds(c, neg)
	case "converged":
		within, _ := time.ParseDuration(c.flags["-within"][0])
		d := fr.backend.convergence(t)
		t.Expect(d <= within, fmt.Sprintf("converged -within %s: every proxy acknowledged the last change", within),
			"within "+within.String(), d.Round(time.Millisecond).String())
	default:
		fr.backend.beforeTraffic(t)
		fr.traffic(l.Name(), c)
	}
}

func (fr *fileRun) proxy(c call) proxyRef {
	p, err := parseProxy(c.pos[0], fr.ns)
	if err != nil {
		fr.t.Fatalf("%v", err)
	}
	return p
}

func (fr *fileRun) route(c call) {
	t := fr.t
	p := fr.proxy(c)
	d := fr.backend.dump(t, p)
	routes, where, err := destinationRoutes(d, c.pos[1], p.Namespace)
	if err != nil {
		t.Expect(false, fmt.Sprintf("route %s %s", c.pos[0], c.pos[1]), "a route for "+c.pos[1], err.Error())
		return
	}
	var want routeWant
	if v, ok := c.flag("-weights"); ok {
		want.Weights, _ = parseWeights(v)
	}
	if v, ok := c.flag("-match"); ok {
		want.Match = regexp.MustCompile(v) // validated by parseCall
	}
	if v, ok := c.flag("-retries"); ok {
		var n uint32
		fmt.Sscan(v, &n)
		want.Retries = &n
	}
	if v, ok := c.flag("-timeout"); ok {
		d, _ := time.ParseDuration(v)
		want.Timeout = &d
	}
	for _, m := range checkRoute(routes, fmt.Sprintf("%s route %s", c.pos[0], where), p.Namespace, want) {
		t.Expect(false, m.What, m.Expected, m.Seen)
	}
}

func (fr *fileRun) cluster(c call) {
	t := fr.t
	p := fr.proxy(c)
	d := fr.backend.dump(t, p)
	name, err := resolveCluster(d, c.pos[1], p.Namespace)
	if err != nil {
		t.Expect(false, fmt.Sprintf("cluster %s %s", c.pos[0], c.pos[1]), "a cluster "+c.pos[1], err.Error())
		return
	}
	sel, ok := c.flag("-endpoints")
	if !ok {
		return
	}
	want := fr.backend.podIPs(t, fr.ns, sel)
	if len(want) == 0 {
		t.Fatalf("cluster %s %s -endpoints %s: the selector picks no running pod in %s, so there is nothing to compare with", c.pos[0], c.pos[1], sel, fr.ns)
	}
	seen := endpointIPs(d, name)
	t.Expect(strings.Join(want, ",") == strings.Join(seen, ","), fmt.Sprintf("%s cluster %s endpoints", c.pos[0], name),
		fmt.Sprintf("%s (pods %s)", listOrNone(want), sel), listOrNone(seen))
}

func (fr *fileRun) holds(c call, neg bool) {
	t := fr.t
	p := fr.proxy(c)
	d := fr.backend.dump(t, p)
	words := c.pos[1:]
	found := scenarios.Mentions(d, words...)
	if neg {
		t.Expect(len(found) == 0, fmt.Sprintf("%s holds no config for %s", c.pos[0], strings.Join(words, " ")), "nothing", listOrNone(found))
		return
	}
	t.Expect(len(found) > 0, fmt.Sprintf("%s holds config for %s", c.pos[0], strings.Join(words, " ")),
		"a listener, route, cluster or endpoints naming "+strings.Join(words, " or "), "none (clusters: "+strings.Join(scenarios.ClusterNames(d), ", ")+")")
}

// traffic runs a traffic command through opts.Traffic.
func (fr *fileRun) traffic(name string, c call) {
	t := fr.t
	req := TrafficRequest{URL: c.pos[0], Headers: c.flags["-H"], Namespace: fr.ns}
	if from, ok := c.flag("-from"); ok {
		ns, deploy, found := strings.Cut(from, "/deploy/")
		if found {
			req.Namespace, req.From = ns, deploy
		} else {
			req.From = strings.TrimPrefix(from, "deploy/")
		}
	}
	if via, ok := c.flag("-via"); ok {
		req.Via = via
	}
	what := name + " " + strings.Join(c.pos, " ")
	tr := fr.opts.Traffic
	switch name {
	case "request":
		want := ResponseWant{Headers: map[string]string{}}
		if v, ok := c.flag("-status"); ok {
			fmt.Sscan(v, &want.Status)
		}
		want.BodyRE, _ = c.flag("-body")
		for _, h := range c.flags["-header"] {
			k, v, _ := strings.Cut(h, ":")
			want.Headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		tr.Request(t, what, req, want)
	case "allowed":
		tr.Allowed(t, what, req)
	case "denied":
		layer, _ := c.flag("-layer")
		tr.Denied(t, what, req, layer)
	case "path":
		var want PathWant
		want.SrcIdentity, _ = c.flag("-src")
		want.DstIdentity, _ = c.flag("-dst")
		want.Waypoint, _ = c.flag("-waypoint")
		if v, ok := c.flag("-hbone"); ok {
			b := v == "yes"
			want.HBONE = &b
		}
		tr.Path(t, what, req, want)
	case "latency":
		n := 100
		if v, ok := c.flag("-n"); ok {
			fmt.Sscan(v, &n)
		}
		budgets, _ := parseBudgets(c.flags["-budget"][0])
		tr.Latency(t, what, req, n, budgets)
	case "split":
		by := "version"
		if v, ok := c.flag("-by"); ok {
			by = v
		}
		ws, _ := parseWeights(c.flags["-weights"][0])
		weights := map[string]float64{}
		for k, v := range ws {
			weights[k] = float64(v)
		}
		tr.Split(t, what, req, by, weights)
	case "counts":
		n := 0
		if v, ok := c.flag("-n"); ok {
			fmt.Sscan(v, &n)
		}
		by := "status"
		if v, ok := c.flag("-by"); ok {
			by = v
		}
		want := map[string]scenarios.Range{}
		for _, w := range c.flags["-want"] {
			class, r, err := parseCountWant(w)
			if err != nil { // a $VARIABLE expanded to something unusable
				t.Fatalf("counts -want: %v", err)
			}
			want[class] = r
		}
		tr.Counts(t, what, req, n, by, want)
	}
}

// SkippedCommands lists the commands a result skipped, with why, for the text report (a file that passed
// with skipped commands must say so).
func SkippedCommands(res scenarios.Result) []string {
	var out []string
	for _, p := range res.Phases {
		if p.Status == scenarios.StatusSkipped {
			out = append(out, fmt.Sprintf("line %s: %s", p.Name, p.SkipReason))
		}
	}
	return out
}
