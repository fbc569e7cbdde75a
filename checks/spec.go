package checks

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/meshlab/meshlab/scenarios"
)

// class says where a command can run.
type class int

const (
	classMesh    class = iota // config assertions and changes: live, and --offline on rendered config
	classCluster              // needs the lab (rollouts, convergence time, kubectl...): skipped --offline
	classTraffic              // sends requests in the lab: skipped --offline
	classBuiltin              // testscript's own commands (stdout, exec, env...): run in both modes
)

// flagKind says how a command flag's value is checked.
type flagKind int

const (
	flagString flagKind = iota
	flagInt
	flagDuration
	flagWeights // NAME=N,NAME=N
	flagRegexp
	flagBudgets // p50=20ms,p99=100ms
	flagBool    // yes|no
	flagCount   // CLASS=RANGE (counts -want)
)

// spec describes one command: how it is called and what its arguments must be.
type spec struct {
	name     string
	usage    string
	class    class
	min, max int // positional arguments (max -1: any)
	flags    map[string]flagKind
	repeat   map[string]bool // flags that may be given more than once
	neg      bool            // may be negated with `!`
	files    bool            // positional arguments name embedded files
	proxy    bool            // the first positional argument is a PROXY
}

// specs are the check-file commands meshlab adds; testscript's builtins and the lab commands are listed in
// passthrough.
var specs = map[string]*spec{
	"apply":  {name: "apply", usage: "apply FILE...", class: classMesh, min: 1, max: -1, files: true},
	"delete": {name: "delete", usage: "delete FILE...", class: classMesh, min: 1, max: -1, files: true},
	"ready":  {name: "ready", usage: "ready [-timeout D] deploy/NAME...", class: classCluster, min: 1, max: -1, flags: map[string]flagKind{"-timeout": flagDuration}},
	"route": {name: "route", usage: "route PROXY DESTINATION [-weights NAME=N,...] [-match REGEXP] [-retries N] [-timeout D]", class: classMesh, min: 2, max: 2, proxy: true,
		flags: map[string]flagKind{"-weights": flagWeights, "-match": flagRegexp, "-retries": flagInt, "-timeout": flagDuration}},
	"cluster": {name: "cluster", usage: "cluster PROXY CLUSTER [-endpoints SELECTOR]", class: classMesh, min: 2, max: 2, proxy: true,
		flags: map[string]flagKind{"-endpoints": flagString}},
	"holds":     {name: "holds", usage: "[!] holds PROXY WORD...", class: classMesh, min: 2, max: -1, proxy: true, neg: true},
	"converged": {name: "converged", usage: "converged -within D", class: classCluster, flags: map[string]flagKind{"-within": flagDuration}},
	"request": {name: "request", usage: "request [-from deploy/NAME | -via GATEWAY] [-H 'NAME: VALUE']... [-status N] [-body REGEXP] [-header 'NAME: REGEXP']... URL", class: classTraffic, min: 1, max: 1,
		flags: map[string]flagKind{"-from": flagString, "-via": flagString, "-H": flagString, "-status": flagInt, "-body": flagRegexp, "-header": flagString}, repeat: map[string]bool{"-H": true, "-header": true}},
	"split": {name: "split", usage: "split [-from deploy/NAME | -via GATEWAY] [-by FIELD] -weights VALUE=N,... URL", class: classTraffic, min: 1, max: 1,
		flags: map[string]flagKind{"-from": flagString, "-via": flagString, "-by": flagString, "-weights": flagWeights}},
	"allowed": {name: "allowed", usage: "allowed [-from deploy/NAME | -via GATEWAY] [-H 'NAME: VALUE']... URL", class: classTraffic, min: 1, max: 1,
		flags: map[string]flagKind{"-from": flagString, "-via": flagString, "-H": flagString}, repeat: map[string]bool{"-H": true}},
	"denied": {name: "denied", usage: "denied [-from deploy/NAME | -via GATEWAY] [-H 'NAME: VALUE']... [-layer L4|L7] URL", class: classTraffic, min: 1, max: 1,
		flags: map[string]flagKind{"-from": flagString, "-via": flagString, "-H": flagString, "-layer": flagString}, repeat: map[string]bool{"-H": true}},
	"path": {name: "path", usage: "path [-from deploy/NAME] [-src SPIFFE-ID] [-dst SPIFFE-ID] [-hbone yes|no] [-waypoint NS/NAME|none] URL", class: classTraffic, min: 1, max: 1,
		flags: map[string]flagKind{"-from": flagString, "-src": flagString, "-dst": flagString, "-hbone": flagBool, "-waypoint": flagString}},
	"latency": {name: "latency", usage: "latency [-from deploy/NAME] [-n N] -budget p50=D,p99=D URL", class: classTraffic, min: 1, max: 1,
		flags: map[string]flagKind{"-from": flagString, "-n": flagInt, "-budget": flagBudgets}},
	"counts": {name: "counts", usage: "counts [-from deploy/NAME | -via GATEWAY] [-H 'NAME: VALUE']... [-n N] [-by status|FIELD] -want CLASS=N%|N|LO..HI|>=N|<=N... URL", class: classTraffic, min: 1, max: 1,
		flags:  map[string]flagKind{"-from": flagString, "-via": flagString, "-H": flagString, "-n": flagInt, "-by": flagString, "-want": flagCount},
		repeat: map[string]bool{"-H": true, "-want": true}},
}

// required flags, by command.
var requiredFlags = map[string][]string{
	"converged": {"-within"},
	"split":     {"-weights"},
	"latency":   {"-budget"},
	"counts":    {"-want"},
}

// passthrough are commands run as they are: the labs' commands (need the lab) and testscript's builtins.
var passthrough = map[string]class{
	"meshlab": classCluster, "kubectl": classCluster, "waitfor": classCluster, "capture": classCluster,
	"cleanup": classCluster, "sleepcurl": classCluster,
	"cd": classBuiltin, "chmod": classBuiltin, "cmp": classBuiltin, "cmpenv": classBuiltin, "cp": classBuiltin,
	"env": classBuiltin, "exec": classBuiltin, "exists": classBuiltin, "grep": classBuiltin, "mkdir": classBuiltin,
	"mv": classBuiltin, "rm": classBuiltin, "skip": classBuiltin, "stderr": classBuiltin, "stdin": classBuiltin,
	"stdout": classBuiltin, "stop": classBuiltin, "symlink": classBuiltin, "unquote": classBuiltin, "wait": classBuiltin,
}

// classOf returns a command's class; ok is false for an unknown command.
func classOf(name string) (class, bool) {
	if s, ok := specs[name]; ok {
		return s.class, true
	}
	c, ok := passthrough[name]
	return c, ok
}

// knownCommands lists every command, for the unknown-command error.
func knownCommands() string {
	var names []string
	for n := range specs {
		names = append(names, n)
	}
	for n := range passthrough {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// call is a command's arguments split into positionals and flags (flags may come anywhere).
type call struct {
	pos   []string
	flags map[string][]string
}

func (c call) flag(name string) (string, bool) {
	v, ok := c.flags[name]
	if !ok {
		return "", false
	}
	return v[len(v)-1], true
}

// parseCall splits and checks args (without the command name) against s. Values holding a $VARIABLE are
// checked only once expanded (at run time).
func parseCall(s *spec, args []string) (call, error) {
	c := call{flags: map[string][]string{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) > 1 && a[0] == '-' && !isNumber(a) {
			kind, ok := s.flags[a]
			if !ok {
				return c, fmt.Errorf("%s: unknown flag %s; usage: %s", s.name, a, s.usage)
			}
			if i+1 >= len(args) {
				return c, fmt.Errorf("%s: flag %s needs a value; usage: %s", s.name, a, s.usage)
			}
			if _, dup := c.flags[a]; dup && !s.repeat[a] {
				return c, fmt.Errorf("%s: flag %s given twice", s.name, a)
			}
			v := args[i+1]
			if !strings.Contains(v, "$") {
				if err := checkValue(kind, v); err != nil {
					return c, fmt.Errorf("%s %s: %v", s.name, a, err)
				}
			}
			c.flags[a] = append(c.flags[a], v)
			i++
			continue
		}
		c.pos = append(c.pos, a)
	}
	switch {
	case len(c.pos) < s.min:
		return c, fmt.Errorf("%s: want at least %d argument(s), got %d; usage: %s", s.name, s.min, len(c.pos), s.usage)
	case s.max >= 0 && len(c.pos) > s.max:
		return c, fmt.Errorf("%s: want at most %d argument(s), got %d (%s); usage: %s", s.name, s.max, len(c.pos), strings.Join(c.pos, " "), s.usage)
	}
	for _, f := range requiredFlags[s.name] {
		if _, ok := c.flags[f]; !ok {
			return c, fmt.Errorf("%s: flag %s is required; usage: %s", s.name, f, s.usage)
		}
	}
	if s.proxy && !strings.Contains(c.pos[0], "$") {
		if _, err := parseProxy(c.pos[0], "default"); err != nil {
			return c, err
		}
	}
	if s.name == "ready" {
		for _, p := range c.pos {
			if !strings.HasPrefix(p, "deploy/") || p == "deploy/" {
				return c, fmt.Errorf("ready: want deploy/NAME, got %q", p)
			}
		}
	}
	if _, via := c.flags["-via"]; via {
		if _, from := c.flags["-from"]; from {
			return c, fmt.Errorf("%s: -from and -via exclude each other: -via sends from this machine through the ingress gateway", s.name)
		}
	}
	if s.name == "denied" {
		if l, ok := c.flag("-layer"); ok && l != "L4" && l != "L7" {
			return c, fmt.Errorf("denied -layer: want L4 or L7, got %q", l)
		}
	}
	return c, nil
}

func isNumber(s string) bool { _, err := strconv.ParseFloat(s, 64); return err == nil }

func checkValue(kind flagKind, v string) error {
	switch kind {
	case flagInt:
		if n, err := strconv.Atoi(v); err != nil || n < 0 {
			return fmt.Errorf("want a non-negative number, got %q", v)
		}
	case flagDuration:
		if _, err := time.ParseDuration(v); err != nil {
			return fmt.Errorf("want a duration such as 500ms or 2s, got %q", v)
		}
	case flagWeights:
		_, err := parseWeights(v)
		return err
	case flagBudgets:
		_, err := parseBudgets(v)
		return err
	case flagRegexp:
		_, err := regexp.Compile(v)
		return err
	case flagBool:
		if v != "yes" && v != "no" {
			return fmt.Errorf("want yes or no, got %q", v)
		}
	case flagCount:
		_, _, err := parseCountWant(v)
		return err
	}
	return nil
}

// parseCountWant reads one counts -want: CLASS=RANGE, the class an answer's status ("503", read as
// "HTTP 503", or a curl failure as the report prints it) or field value, the range as scenarios.ParseRange
// reads it.
func parseCountWant(v string) (string, scenarios.Range, error) {
	class, rng, ok := strings.Cut(v, "=") // the first "=": a range may hold one (>=5)
	class = strings.TrimSpace(class)
	if !ok || class == "" {
		return "", scenarios.Range{}, fmt.Errorf("want CLASS=RANGE (e.g. 503=50%% or v1=>=1), got %q", v)
	}
	if n, err := strconv.Atoi(class); err == nil && n >= 100 && n <= 599 {
		class = "HTTP " + class // the status as the tally names it
	}
	r, err := scenarios.ParseRange(rng)
	if err != nil {
		return "", r, fmt.Errorf("%s: %v", class, err)
	}
	return class, r, nil
}

// parseWeights reads NAME=N,NAME=N.
func parseWeights(v string) (map[string]uint32, error) {
	out := map[string]uint32{}
	for _, part := range strings.Split(v, ",") {
		name, n, ok := strings.Cut(part, "=")
		w, err := strconv.ParseUint(n, 10, 32)
		if !ok || name == "" || err != nil {
			return nil, fmt.Errorf("want NAME=WEIGHT,NAME=WEIGHT (e.g. echo-v1=95,echo-v2=5), got %q", v)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%s appears twice in %q", name, v)
		}
		out[name] = uint32(w)
	}
	return out, nil
}

// parseBudgets reads p50=20ms,p99=100ms into quantile -> budget.
func parseBudgets(v string) (map[float64]time.Duration, error) {
	out := map[float64]time.Duration{}
	for _, part := range strings.Split(v, ",") {
		name, d, ok := strings.Cut(part, "=")
		q, qerr := strconv.ParseFloat(strings.TrimPrefix(name, "p"), 64)
		dur, derr := time.ParseDuration(d)
		if !ok || !strings.HasPrefix(name, "p") || qerr != nil || q <= 0 || q >= 100 || derr != nil {
			return nil, fmt.Errorf("want pNN=DURATION,... (e.g. p50=20ms,p99=100ms), got %q", v)
		}
		out[math.Round(q*1e4)/1e6] = dur // 99.9 -> 0.999 exactly
	}
	return out, nil
}

// validate checks one line of f: a known command, its arguments, the embedded files it names.
func validate(f *File, l Line) []string {
	name := l.Name()
	s, mine := specs[name]
	if !mine {
		if _, ok := passthrough[name]; !ok {
			return []string{fmt.Sprintf("unknown command %q (commands: %s)", name, knownCommands())}
		}
		return nil
	}
	if l.Neg && !s.neg {
		return []string{fmt.Sprintf("%s cannot be negated with `!`", name)}
	}
	c, err := parseCall(s, l.Args[1:])
	if err != nil {
		return []string{err.Error()}
	}
	var errs []string
	if s.files {
		for _, p := range c.pos {
			if _, ok := f.Files[p]; ok || strings.Contains(p, "$") {
				continue
			}
			if _, err := os.Stat(f.beside(p)); err != nil {
				errs = append(errs, fmt.Sprintf("%s: no file %s: neither embedded (add a `-- %s --` section) nor beside the check file", name, p, p))
			}
		}
	}
	return errs
}
