package labs

import (
	"fmt"
	"regexp"
)

var labName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// ValidName reports whether name suits a lab: lower-case letters, digits and dashes, as the built-in
// labs are named.
func ValidName(name string) error {
	if !labName.MatchString(name) {
		return fmt.Errorf("lab name %q: use lower-case letters, digits and dashes (like traffic-shifting)", name)
	}
	return nil
}

// Scaffold returns a new lab to start from: prose, one change with its cleanup, one waitfor, one
// assertion and an embedded YAML file. It passes `meshlab lab run` on a fresh lab as written.
func Scaffold(name string) []byte {
	return []byte(fmt.Sprintf(scaffold, name))
}

const scaffold = `# %s: say in one line what this lab shows (this first comment is its title).
#
# The comments are the tutorial: say what the learner is about to see and why, in Istio's
# terms. Each block of comments and the commands after it is one step in the learner's
# mode (meshlab lab run --step). docs/writing-labs.md lists every command.
#
# The lab starts from what ` + "`meshlab up`" + ` made: bookinfo and a sleep client in the default
# namespace, enrolled in ambient mode. sleepcurl sends a request from the sleep pod.
sleepcurl http://productpage:9080/productpage
stdout 'The Comedy of Errors'

# A change: a waypoint proxy, applied from the file embedded at the end of this lab.
# Register its undo right after it with cleanup; cleanups run when the lab ends, passed
# or failed, so the cluster returns to what meshlab up made.
kubectl apply -f waypoint.yaml
stdout 'gateway.gateway.networking.k8s.io/example-waypoint (created|configured|unchanged)'
cleanup kubectl delete -f waypoint.yaml --ignore-not-found

# Changes take a moment to converge: waitfor runs a command every two seconds until its
# output matches. Here the control plane answers the Gateway with a Deployment and marks
# it Programmed.
waitfor '^example-waypoint +default +\S+ +True' meshlab waypoint list

# An assertion on a command's output: stdout (or stderr) matches a regular expression;
# a ! in front says it must not.
meshlab waypoint list
stdout '^example-waypoint '
! stdout 'reviews-waypoint'

-- waypoint.yaml --
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: example-waypoint
  namespace: default
  labels:
    istio.io/waypoint-for: service
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
`
