package l7

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// checkFields rejects any populated field of m not in allowed. Unknown fields mean semantics this engine
// would silently ignore, so they must be refused rather than dropped.
func checkFields(m proto.Message, allowed ...string) error {
	if m == nil {
		return nil
	}
	var bad []string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !slices.Contains(allowed, string(fd.Name())) {
			bad = append(bad, string(fd.Name()))
		}
		return true
	})
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	if len(bad) == 1 {
		return fmt.Errorf("unsupported field %s", bad[0])
	}
	return fmt.Errorf("unsupported fields %s", strings.Join(bad, ", "))
}
