package validation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// ValidateYAML decodes one YAML or JSON document into its typed object and validates it (see Validate for
// the kinds). Besides Validate's rules it checks what decoding into typed objects silently loses, as the API
// server's schema validation does: fields the kind does not have (Istio's specs would otherwise drop them
// silently), two members of a oneof (simple and consistentHash, exact and prefix...), enum names the kind
// does not know, values of the wrong JSON type. A field the kind does not have is reported as an error whose
// Detail is "unknown field" (see Message).
//
// The object is returned whenever it could be decoded, even when it is invalid. A document of a kind this
// package has no rules for returns an error wrapping ErrUnsupported.
func ValidateYAML(data []byte) (runtime.Object, Warnings, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, nil, fmt.Errorf("malformed YAML: %w", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil || top == nil {
		return nil, nil, errors.New("not a Kubernetes object: expected a mapping with apiVersion and kind")
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return nil, nil, fmt.Errorf("reading apiVersion and kind: %w", err)
	}
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	if err != nil {
		return nil, nil, fmt.Errorf("apiVersion %q: %w", tm.APIVersion, err)
	}
	obj := newObject(gv.Group, tm.Kind)
	if obj == nil {
		return nil, nil, fmt.Errorf("validation: %s %s: %w", tm.APIVersion, tm.Kind, ErrUnsupported)
	}
	v := &validator{}
	var meta metav1.ObjectMeta
	if raw, ok := top["metadata"]; ok {
		strict, err := sigsjson.UnmarshalStrict(raw, &meta, sigsjson.DisallowUnknownFields)
		if err != nil {
			v.invalid(field.NewPath("metadata"), field.OmitValueType{}, err.Error())
		}
		v.strictErrors("metadata.", strict)
	}
	var decodeErr error
	if spec := specOf(obj); spec != nil {
		// Istio's specs are protobuf messages whose JSON decoding ignores unknown fields: walk the spec
		// against the message's schema instead.
		for _, k := range sortedKeys(top) {
			switch k {
			case "apiVersion", "kind", "metadata", "spec", "status":
			default:
				v.unknown(field.NewPath(k))
			}
		}
		if raw, ok := top["spec"]; ok {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			var specJSON any
			if err := dec.Decode(&specJSON); err == nil {
				v.walkMessage(field.NewPath("spec"), spec.ProtoReflect().Descriptor(), specJSON)
			}
		}
		decodeErr = sigsjson.UnmarshalCaseSensitivePreserveInts(js, obj)
	} else {
		// Kubernetes and Gateway API types decode strictly, as the API server does with fieldValidation=Strict.
		var strict []error
		strict, decodeErr = sigsjson.UnmarshalStrict(js, obj, sigsjson.DisallowUnknownFields)
		if decodeErr == nil {
			v.strictErrors("", strict)
		}
	}
	if decodeErr != nil {
		if len(v.errs) > 0 {
			// What the walk found explains why decoding failed.
			return nil, v.warns, &Error{Kind: tm.Kind, Namespace: meta.Namespace, Name: meta.Name, Errs: v.errs}
		}
		return nil, v.warns, fmt.Errorf("decoding %s %s: %w", tm.APIVersion, tm.Kind, decodeErr)
	}
	warns, err := Validate(obj)
	var invalid *Error
	switch {
	case err == nil:
	case errors.As(err, &invalid):
		v.errs = append(v.errs, invalid.Errs...)
	default:
		return obj, append(v.warns, warns...), err
	}
	v.warns = append(v.warns, warns...)
	ws, err := v.result(tm.Kind, meta.Namespace, meta.Name)
	return obj, ws, err
}

// detailUnknownField is the Detail of the error for a field the kind does not have.
const detailUnknownField = "unknown field"

func (v *validator) unknown(p *field.Path) { v.forbidden(p, detailUnknownField) }

// strictErrors records sigs.k8s.io/json's strict decoding errors (unknown and duplicate fields), whose paths
// are relative to prefix.
func (v *validator) strictErrors(prefix string, strict []error) {
	for _, e := range strict {
		var fp interface{ FieldPath() string }
		if !errors.As(e, &fp) {
			v.invalid(field.NewPath(strings.TrimSuffix(prefix, ".")), field.OmitValueType{}, e.Error())
			continue
		}
		p := field.NewPath(prefix + fp.FieldPath())
		if strings.HasPrefix(e.Error(), "duplicate field") {
			v.add(field.Duplicate(p, field.OmitValueType{}))
			continue
		}
		v.unknown(p)
	}
}

// IsUnknownField reports whether fe is about a field the object's kind does not have.
func IsUnknownField(fe *field.Error) bool {
	return fe.Type == field.ErrorTypeForbidden && fe.Detail == detailUnknownField
}

// Message is how one violation reads: `unknown field "spec.actoin"` for a field the kind does not have (the
// API server's strict decoding message), else the field error itself, such as
// `spec.http[0].route[1].weight: Invalid value: -10: must not be negative`.
func Message(fe *field.Error) string {
	if IsUnknownField(fe) {
		return fmt.Sprintf("unknown field %q", fe.Field)
	}
	return fe.Error()
}

// newObject returns an empty typed object for a group and kind this package validates.
func newObject(group, kind string) runtime.Object {
	gk := schema.GroupKind{Group: group, Kind: kind}
	if _, ok := infoOf(gk); !ok {
		return nil
	}
	switch gk {
	case schema.GroupKind{Kind: "Namespace"}:
		return &corev1.Namespace{}
	case schema.GroupKind{Kind: "Service"}:
		return &corev1.Service{}
	case schema.GroupKind{Kind: "Pod"}:
		return &corev1.Pod{}
	case schema.GroupKind{Kind: "ServiceAccount"}:
		return &corev1.ServiceAccount{}
	case schema.GroupKind{Group: groupDiscovery, Kind: "EndpointSlice"}:
		return &discoveryv1.EndpointSlice{}
	case schema.GroupKind{Group: groupGatewayAPI, Kind: "GatewayClass"}:
		return &gwv1.GatewayClass{}
	case schema.GroupKind{Group: groupGatewayAPI, Kind: "Gateway"}:
		return &gwv1.Gateway{}
	case schema.GroupKind{Group: groupGatewayAPI, Kind: "HTTPRoute"}:
		return &gwv1.HTTPRoute{}
	case schema.GroupKind{Group: groupGatewayAPI, Kind: "GRPCRoute"}:
		return &gwv1.GRPCRoute{}
	case schema.GroupKind{Group: groupGatewayAPI, Kind: "TCPRoute"}:
		return &gwv1.TCPRoute{}
	}
	switch kind {
	case "VirtualService":
		return &networkingv1.VirtualService{}
	case "DestinationRule":
		return &networkingv1.DestinationRule{}
	case "ServiceEntry":
		return &networkingv1.ServiceEntry{}
	case "Gateway":
		return &networkingv1.Gateway{}
	case "AuthorizationPolicy":
		return &securityv1.AuthorizationPolicy{}
	case "PeerAuthentication":
		return &securityv1.PeerAuthentication{}
	case "RequestAuthentication":
		return &securityv1.RequestAuthentication{}
	}
	return nil
}

// specOf returns the protobuf spec of an Istio object, nil for other kinds.
func specOf(obj runtime.Object) proto.Message {
	switch o := obj.(type) {
	case *networkingv1.VirtualService:
		return &o.Spec
	case *networkingv1.DestinationRule:
		return &o.Spec
	case *networkingv1.ServiceEntry:
		return &o.Spec
	case *networkingv1.Gateway:
		return &o.Spec
	case *securityv1.AuthorizationPolicy:
		return &o.Spec
	case *securityv1.PeerAuthentication:
		return &o.Spec
	case *securityv1.RequestAuthentication:
		return &o.Spec
	}
	return nil
}

// walkMessage checks a decoded JSON value against a message of the spec's schema.
func (v *validator) walkMessage(p *field.Path, md protoreflect.MessageDescriptor, raw any) {
	obj, ok := raw.(map[string]any)
	if !ok {
		v.invalid(p, jsonType(raw), "must be an object")
		return
	}
	oneofs := map[protoreflect.FullName]string{}
	for _, k := range sortedKeys(obj) {
		kp := p.Child(k)
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(k))
		}
		if fd == nil {
			v.unknown(kp)
			continue
		}
		val := obj[k]
		if val == nil {
			continue // null leaves the field unset
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if first, dup := oneofs[od.FullName()]; dup {
				v.forbidden(kp, fmt.Sprintf("cannot be set together with %s: only one of %s may be set", first, oneofMembers(od)))
			} else {
				oneofs[od.FullName()] = k
			}
		}
		v.walkField(kp, fd, val)
	}
}

func oneofMembers(od protoreflect.OneofDescriptor) string {
	names := make([]string, od.Fields().Len())
	for i := range names {
		names[i] = od.Fields().Get(i).JSONName()
	}
	return strings.Join(names, ", ")
}

func (v *validator) walkField(p *field.Path, fd protoreflect.FieldDescriptor, val any) {
	switch {
	case fd.IsMap():
		m, ok := val.(map[string]any)
		if !ok {
			v.invalid(p, jsonType(val), "must be an object")
			return
		}
		keyKind := fd.MapKey().Kind()
		for _, k := range sortedKeys(m) {
			if keyKind != protoreflect.StringKind {
				if _, err := strconv.ParseInt(k, 10, 64); err != nil {
					v.invalid(p.Key(k), k, "the keys of this map must be numbers")
				}
			}
			if m[k] != nil {
				v.walkValue(p.Key(k), fd.MapValue(), m[k])
			}
		}
	case fd.IsList():
		list, ok := val.([]any)
		if !ok {
			v.invalid(p, jsonType(val), "must be a list")
			return
		}
		for i, e := range list {
			if e != nil {
				v.walkValue(p.Index(i), fd, e)
			}
		}
	default:
		v.walkValue(p, fd, val)
	}
}

func (v *validator) walkValue(p *field.Path, fd protoreflect.FieldDescriptor, val any) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		md := fd.Message()
		if strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
			v.wellKnown(p, md, val)
			return
		}
		v.walkMessage(p, md, val)
	case protoreflect.EnumKind:
		switch x := val.(type) {
		case string:
			values := fd.Enum().Values()
			if values.ByName(protoreflect.Name(x)) == nil {
				names := make([]string, values.Len())
				for i := range names {
					names[i] = string(values.Get(i).Name())
				}
				v.add(field.NotSupported(p, x, names))
			}
		case json.Number: // a number is accepted; Validate checks it is a known value
		default:
			v.invalid(p, jsonType(val), "must be a string")
		}
	case protoreflect.BoolKind:
		if _, ok := val.(bool); !ok {
			v.invalid(p, jsonType(val), "must be a boolean")
		}
	case protoreflect.StringKind, protoreflect.BytesKind:
		if _, ok := val.(string); !ok {
			v.invalid(p, jsonType(val), "must be a string")
		}
	default: // numbers, which protobuf's JSON form also accepts quoted
		v.number(p, val)
	}
}

func (v *validator) number(p *field.Path, val any) {
	switch x := val.(type) {
	case json.Number:
	case string:
		if _, err := strconv.ParseFloat(x, 64); err != nil {
			v.invalid(p, x, "must be a number")
		}
	default:
		v.invalid(p, jsonType(val), "must be a number")
	}
}

// wellKnown checks the JSON form of the protobuf well-known types a spec uses: durations are strings such as
// "5s" or "100ms", wrappers are plain scalars.
func (v *validator) wellKnown(p *field.Path, md protoreflect.MessageDescriptor, val any) {
	switch md.FullName() {
	case "google.protobuf.Duration", "google.protobuf.Timestamp", "google.protobuf.StringValue", "google.protobuf.BytesValue":
		if _, ok := val.(string); !ok {
			v.invalid(p, jsonType(val), "must be a string")
		}
	case "google.protobuf.BoolValue":
		if _, ok := val.(bool); !ok {
			v.invalid(p, jsonType(val), "must be a boolean")
		}
	case "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
		"google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value":
		v.number(p, val)
	}
}

// jsonType names the JSON type of a decoded value, for messages about the wrong type.
func jsonType(val any) string {
	switch val.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "list"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number, float64:
		return "number"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", val)
}
