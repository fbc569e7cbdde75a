package kvfields

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want map[string]string
	}{
		{`src.addr="10.244.0.12:40076" direction="outbound" bytes_sent=105 duration="60.352ms"`,
			map[string]string{"src.addr": "10.244.0.12:40076", "direction": "outbound", "bytes_sent": "105", "duration": "60.352ms"}},
		{`a="x \"y\"" b=2`, map[string]string{"a": `x "y"`, "b": "2"}},
		{`a=1 not a field b=2`, map[string]string{"a": "1"}},
		{`a="unterminated b=2`, map[string]string{}},
		{``, map[string]string{}},
	} {
		if got := Parse(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
