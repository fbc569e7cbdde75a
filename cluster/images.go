package cluster

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kind/pkg/cluster/nodes"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
)

// ErrBadImage marks an image the user named that cannot be loaded: not in Docker, or an archive that is
// missing or not an image archive. Commands exit 2 on it, before anything is loaded.
var ErrBadImage = errors.New("cannot load")

// SelectNodes returns the cluster's nodes named in names (kind's --nodes), or all of them when names is
// empty. A cluster that does not exist or has no nodes is ErrEnvironment.
func (c *Cluster) SelectNodes(names []string) ([]nodes.Node, error) {
	all, err := c.Nodes()
	if err != nil {
		return nil, fmt.Errorf("%w: listing the nodes of cluster %q: %w", ErrEnvironment, c.Name, err)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%w: cluster %q has no nodes: run `meshlab up --name %s` first", ErrEnvironment, c.Name, c.Name)
	}
	if len(names) == 0 {
		return all, nil
	}
	byName := map[string]nodes.Node{}
	known := make([]string, 0, len(all))
	for _, n := range all {
		byName[n.String()] = n
		known = append(known, n.String())
	}
	var picked []nodes.Node
	for _, name := range names {
		n, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("%w: unknown node %q in cluster %q (its nodes: %s)", ErrEnvironment, name, c.Name, strings.Join(known, ", "))
		}
		picked = append(picked, n)
	}
	return picked, nil
}

// DockerImageID returns the ID Docker knows image by, or an ErrBadImage error when Docker does not have it.
func DockerImageID(ctx context.Context, image string) (string, error) {
	out, err := exec.CommandContext(ctx, "docker", "image", "inspect", "-f", "{{ .Id }}", image).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("%w: image %q is not present in Docker (build or pull it first; `docker images` lists what is there)", ErrBadImage, image)
		}
		return "", fmt.Errorf("%w: running docker: %w", ErrEnvironment, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// LoadDockerImages copies Docker images into the nodes' containerd, as `kind load docker-image` does:
// every image must be in Docker before any is loaded; nodes that already hold an image with the same ID
// under that name are skipped; the others get one `docker save` archive of all the images.
func (c *Cluster) LoadDockerImages(ctx context.Context, images, nodeNames []string) error {
	images = dedupe(images)
	ids := make([]string, len(images))
	var missing []error
	for i, img := range images {
		id, err := DockerImageID(ctx, img)
		if err != nil && !errors.Is(err, ErrBadImage) {
			return err
		}
		if err != nil {
			missing = append(missing, err)
		}
		ids[i] = id
	}
	if err := errors.Join(missing...); err != nil {
		return err
	}
	targets, err := c.SelectNodes(nodeNames)
	if err != nil {
		return err
	}
	var need []nodes.Node
	for _, n := range targets {
		for i, img := range images {
			if !nodeHasImage(ctx, n, img, ids[i]) {
				need = append(need, n)
				break
			}
		}
	}
	if len(need) == 0 {
		c.logger.V(0)("Images %s are already present on every node", strings.Join(images, ", "))
		return nil
	}
	dir, err := os.MkdirTemp("", "meshlab-images-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	archive := filepath.Join(dir, "images.tar")
	if out, err := exec.CommandContext(ctx, "docker", append([]string{"save", "-o", archive}, images...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("saving %s from Docker: %w: %s", strings.Join(images, ", "), err, strings.TrimSpace(string(out)))
	}
	return loadArchive(ctx, archive, need, c.logger.V(0))
}

// LoadImageArchives loads image archives (`docker save` or OCI layout tarballs) into the nodes, as `kind
// load image-archive` does. Every archive is checked to be a readable image archive before any is loaded.
func (c *Cluster) LoadImageArchives(ctx context.Context, archives, nodeNames []string) error {
	var bad []error
	for _, a := range archives {
		if err := CheckImageArchive(a); err != nil {
			bad = append(bad, err)
		}
	}
	if err := errors.Join(bad...); err != nil {
		return err
	}
	targets, err := c.SelectNodes(nodeNames)
	if err != nil {
		return err
	}
	for _, a := range archives {
		if err := loadArchive(ctx, a, targets, c.logger.V(0)); err != nil {
			return err
		}
	}
	return nil
}

// CheckImageArchive reads the whole tar archive at path and reports an ErrBadImage error when it is
// missing, not a tar archive, truncated, or holds neither a Docker manifest.json nor an OCI index.json.
func CheckImageArchive(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: image archive %s: %w", ErrBadImage, path, err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	manifest := false
	entries := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: image archive %s is not a readable tar archive: %w", ErrBadImage, path, err)
		}
		entries++
		switch strings.TrimPrefix(h.Name, "./") {
		case "manifest.json", "index.json":
			manifest = true
		}
		// Reading every entry to its end is what finds a truncated archive.
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return fmt.Errorf("%w: image archive %s is truncated or corrupt at %s: %w", ErrBadImage, path, h.Name, err)
		}
	}
	if entries == 0 || !manifest {
		return fmt.Errorf("%w: %s is not an image archive: it has no manifest.json (docker save) or index.json (OCI layout)", ErrBadImage, path)
	}
	return nil
}

// nodeHasImage reports whether the node's containerd holds image under its name with Docker's ID. The
// node image has no crictl (kind's check), so it asks ctr: containerd's CRI plugin also names every
// image by its ID (the config digest Docker shows), and both names point at the same manifest when the
// name is that image.
func nodeHasImage(ctx context.Context, n nodes.Node, image, id string) bool {
	byName, byID := nodeImageTarget(ctx, n, normalizeRef(image)), nodeImageTarget(ctx, n, id)
	return byName != "" && byName == byID
}

// nodeImageTarget is the manifest digest the node's containerd holds under ref, "" when none.
func nodeImageTarget(ctx context.Context, n nodes.Node, ref string) string {
	var out strings.Builder
	if err := n.CommandContext(ctx, "ctr", "--namespace=k8s.io", "images", "ls", "name=="+ref).SetStdout(&out).Run(); err != nil {
		return ""
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == ref {
			return f[2]
		}
	}
	return ""
}

// normalizeRef spells image as containerd names it: docker.io/library/ for short names, :latest when no
// tag or digest is given.
func normalizeRef(image string) string {
	ref := image
	if i := strings.IndexByte(ref, '/'); i < 0 || !strings.ContainsAny(ref[:i], ".:") && ref[:i] != "localhost" {
		if i < 0 {
			ref = "library/" + ref
		}
		ref = "docker.io/" + ref
	}
	if last := ref[strings.LastIndexByte(ref, '/')+1:]; !strings.ContainsAny(last, ":@") {
		ref += ":latest"
	}
	return ref
}

// loadArchive imports one archive into each node's containerd, one node after the other.
func loadArchive(ctx context.Context, archive string, targets []nodes.Node, logf func(string, ...any)) error {
	for _, n := range targets {
		if err := ctx.Err(); err != nil {
			return err
		}
		logf("Loading %s into node %s", filepath.Base(archive), n)
		f, err := os.Open(archive)
		if err != nil {
			return err
		}
		err = nodeutils.LoadImageArchive(n, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("loading %s into node %s: %w", archive, n, err)
		}
	}
	return nil
}

// TagImage gives image the extra name alias on every node (containerd's `ctr images tag --force`), so
// that manifests can name a stable tag for a content-tagged image.
func (c *Cluster) TagImage(ctx context.Context, image, alias string) error {
	ns, err := c.Nodes()
	if err != nil {
		return err
	}
	for _, n := range ns {
		var out strings.Builder
		if err := n.CommandContext(ctx, "ctr", "--namespace=k8s.io", "images", "tag", "--force", image, alias).SetStderr(&out).Run(); err != nil {
			return fmt.Errorf("tagging %s as %s on node %s: %w: %s", image, alias, n, err, strings.TrimSpace(out.String()))
		}
	}
	return nil
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
