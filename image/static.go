package image

import (
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"runtime"
)

// ErrNotStatic means a binary needs a dynamic loader; the image has no libc, so it could not start.
var ErrNotStatic = errors.New("not a static binary")

// buildHint tells the user how to get a binary that fits in the image.
const buildHint = "build meshlab with CGO_ENABLED=0 (`make build`, or `CGO_ENABLED=0 GOOS=linux go build -o meshlab ./cmd/meshlab`)"

// SelfBinary returns the path of the running executable if it can be packed into an image: a static
// linux ELF. Otherwise the error says how to build one.
func SelfBinary() (string, error) {
	if runtime.GOOS != "linux" {
		return "", fmt.Errorf("this meshlab is built for %s/%s but images need a linux binary: %s and pass it with --binary", runtime.GOOS, runtime.GOARCH, buildHint)
	}
	path, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the running executable: %w", err)
	}
	if err := CheckStatic(path); err != nil {
		return "", err
	}
	return path, nil
}

// CheckStatic returns nil if path is a statically linked linux ELF executable for amd64 or arm64.
// A dynamically linked one gives an error wrapping ErrNotStatic.
func CheckStatic(path string) error {
	_, err := inspect(path)
	return err
}

// inspect checks that path is a static linux ELF and returns its GOARCH-style architecture.
func inspect(path string) (arch string, err error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s is not a linux executable (%w): %s", path, err, buildHint)
	}
	defer f.Close()

	// Go leaves OSABI at NONE for linux and sets it for FreeBSD; the build info settles Go binaries.
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return "", fmt.Errorf("%s is built for %v, not linux: %s", path, f.OSABI, buildHint)
	}
	if bi, err := buildinfo.ReadFile(path); err == nil {
		for _, s := range bi.Settings {
			if s.Key == "GOOS" && s.Value != "linux" {
				return "", fmt.Errorf("%s is built for GOOS=%s, not linux: %s", path, s.Value, buildHint)
			}
		}
	}
	switch f.Machine {
	case elf.EM_X86_64:
		arch = "amd64"
	case elf.EM_AARCH64:
		arch = "arm64"
	default:
		return "", fmt.Errorf("%s is built for %v; meshlab images support amd64 and arm64", path, f.Machine)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("%s is an ELF %v, not an executable", path, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		interp := make([]byte, p.Filesz)
		if _, err := p.ReadAt(interp, 0); err != nil {
			return "", fmt.Errorf("reading interpreter of %s: %w", path, err)
		}
		return "", fmt.Errorf("%s: %w: it needs the dynamic loader %s, which a meshlab image does not have: %s",
			path, ErrNotStatic, trimNUL(interp), buildHint)
	}
	return arch, nil
}

func trimNUL(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
