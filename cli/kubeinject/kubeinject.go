// Package kubeinject implements `meshlab kube-inject`: sidecar injection applied to YAML offline, like
// istioctl kube-inject, with the same decision and template as the webhook.
package kubeinject

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/controlplane/inject"
	"github.com/meshlab/meshlab/image"
)

type flagpole struct {
	file, output, namespace string
	nsLabels                string
	image, template         string
}

// NewCommand returns the kube-inject command.
func NewCommand(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "kube-inject -f FILE [-o FILE] [--namespace-labels k=v,...]",
		Short: "Add meshlab's sidecar to the pods of a YAML manifest, offline (like istioctl kube-inject)",
		Long: `kube-inject reads Pods, Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs and CronJobs and adds the
sidecar (the istio-init and istio-proxy containers) to each pod template the webhook would inject, deciding
with the same rules as if each namespace had the labels given by --namespace-labels (default
istio-injection=enabled). Other documents pass through unchanged; kind: List documents (what kubectl get -o
yaml prints) are read as their items. Documents are decoded strictly and validated: a misspelt field, a
duplicate key or an invalid object is an error naming document, line and field, and nothing is written
(exit 2). -f - reads standard input.`,
		Example: `  meshlab kube-inject -f bookinfo.yaml | kubectl apply -f -
  meshlab kube-inject -f app.yaml -o app-injected.yaml --namespace-labels istio.io/rev=default`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runE(env, flags) },
	}
	f := cmd.Flags()
	f.StringVarP(&flags.file, "filename", "f", "", "manifest to read (- for standard input)")
	f.StringVarP(&flags.output, "output", "o", "", "file to write (default: standard output)")
	f.StringVarP(&flags.namespace, "namespace", "n", "default", "namespace of objects that name none")
	f.StringVar(&flags.nsLabels, "namespace-labels", inject.LabelInjection+"=enabled", "labels the namespaces are assumed to have, k=v,...")
	f.StringVar(&flags.image, "image", "", "meshlab image for the sidecar (default: this binary's image, as `meshlab up` loads it)")
	f.StringVar(&flags.template, "template", "", "injection template file (default: the built-in one)")
	return cmd
}

func runE(env cliutil.Env, flags *flagpole) error {
	if flags.file == "" {
		return cliutil.Usagef("no input: give -f FILE (or -f - for standard input)")
	}
	nsLabels, err := labels.ConvertSelectorToLabelsMap(flags.nsLabels)
	if err != nil {
		return cliutil.Usagef("--namespace-labels %q: %v", flags.nsLabels, err)
	}
	data, err := readInput(env, flags.file)
	if err != nil {
		return err
	}
	text := inject.DefaultTemplate
	if flags.template != "" {
		b, err := os.ReadFile(flags.template)
		if err != nil {
			return fmt.Errorf("reading template %s: %w", flags.template, err)
		}
		text = string(b)
	}
	tmpl, err := inject.ParseTemplate(text)
	if err != nil {
		return err
	}
	img := flags.image
	if img == "" {
		if img, err = selfImage(); err != nil {
			return fmt.Errorf("finding this binary's image (or pass --image): %w", err)
		}
	}
	name := flags.file
	if name == "-" {
		name = "<stdin>"
	}
	docs, err := inject.ReadManifest(name, data)
	if err != nil {
		return cliutil.BadInput(err) // malformed or invalid input exits 2, and nothing is written
	}
	decisions, err := inject.InjectManifest(docs, inject.ManifestOptions{
		Namespace:       flags.namespace,
		NamespaceLabels: func(string) map[string]string { return nsLabels },
		Template:        tmpl,
		Values:          inject.Values{ProxyImage: img},
	})
	if err != nil {
		return err
	}
	for _, d := range decisions {
		env.Logger.V(1)("%s %s/%s: injected=%v (%s)", d.Kind, d.Namespace, d.Name, d.Injected, d.Reason)
	}
	var out bytes.Buffer
	if err := inject.WriteManifest(&out, docs); err != nil {
		return err
	}
	if flags.output == "" {
		_, err = env.Streams.Out.Write(out.Bytes())
		return err
	}
	if err := os.WriteFile(flags.output, out.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", flags.output, err)
	}
	return nil
}

func readInput(env cliutil.Env, path string) ([]byte, error) {
	if path == "-" {
		if env.Streams.In == nil {
			return nil, fmt.Errorf("no standard input")
		}
		return io.ReadAll(env.Streams.In)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, nil
}

// selfImage is the tag `meshlab up` gives the image it packs from this binary.
var selfImage = func() (string, error) {
	bin, err := image.SelfBinary()
	if err != nil {
		return "", err
	}
	_, tag, err := image.Build(bin)
	if err != nil {
		return "", err
	}
	return tag.String(), nil
}
