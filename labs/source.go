package labs

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Load reads a lab from a .txtar file, or every .txtar file of a directory (sorted by name).
func Load(path string) ([]Lab, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading lab %s: %w", path, err)
	}
	if !info.IsDir() {
		l, err := loadFile(path)
		if err != nil {
			return nil, err
		}
		return []Lab{l}, nil
	}
	matches, err := filepath.Glob(filepath.Join(path, "*.txtar"))
	if err != nil {
		return nil, err
	}
	if len(matches) == 0 {
		return nil, fmt.Errorf("%s: no .txtar lab files in this directory", path)
	}
	sort.Strings(matches)
	var out []Lab
	for _, m := range matches {
		l, err := loadFile(m)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func loadFile(path string) (Lab, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Lab{}, fmt.Errorf("reading lab %s: %w", path, err)
	}
	name := strings.TrimSuffix(filepath.Base(path), ".txtar")
	return Lab{Name: name, Title: title(data), Script: data, File: path}, nil
}

// Resolve turns command-line arguments into labs. An argument that looks like a path (it holds a / or
// ends in .txtar) is a file or a directory of them; otherwise a built-in lab's name, else a file or
// directory of that name.
func Resolve(args ...string) ([]Lab, error) {
	builtin := map[string]bool{}
	for _, l := range All() {
		builtin[l.Name] = true
	}
	var out []Lab
	for _, a := range args {
		looksLikePath := strings.ContainsRune(a, filepath.Separator) || strings.HasSuffix(a, ".txtar")
		if _, err := os.Stat(a); looksLikePath || (!builtin[a] && err == nil) {
			ls, err := Load(a)
			if err != nil {
				return nil, err
			}
			out = append(out, ls...)
			continue
		}
		ls, err := Select(a)
		if err != nil {
			return nil, err
		}
		out = append(out, ls...)
	}
	return out, nil
}
