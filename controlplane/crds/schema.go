package crds

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
)

// Schema is one served version of a CRD as the API server checks objects against it, built with the API
// server's own packages: the structural schema (what pruning keeps), the OpenAPI validator (types,
// formats, enums, bounds, patterns) and the CEL validator (x-kubernetes-validations).
type Schema struct {
	structural *structuralschema.Structural
	openAPI    apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

var schemas sync.Map // group/kind/version -> schemaOrErr

type schemaOrErr struct {
	s   *Schema
	err error
}

// SchemaFor returns the schema of group, kind and version, or an error if meshlab installs no such CRD or
// it does not serve the version. Schemas (and errors: the webhook asks for every kind of a group) are built
// once and shared.
func SchemaFor(group, kind, version string) (*Schema, error) {
	key := group + "/" + kind + "/" + version
	if v, ok := schemas.Load(key); ok {
		return v.(schemaOrErr).s, v.(schemaOrErr).err
	}
	s, err := buildSchema(group, kind, version)
	v, _ := schemas.LoadOrStore(key, schemaOrErr{s, err})
	return v.(schemaOrErr).s, v.(schemaOrErr).err
}

func buildSchema(group, kind, version string) (*Schema, error) {
	crd := Find(group, kind)
	if crd == nil {
		return nil, fmt.Errorf("crds: no CRD for %s %s", group, kind)
	}
	var props *apiextensionsv1.JSONSchemaProps
	for _, v := range crd.Spec.Versions {
		if v.Name == version && v.Served && v.Schema != nil {
			props = v.Schema.OpenAPIV3Schema
		}
	}
	if props == nil {
		return nil, fmt.Errorf("crds: %s does not serve %s", crd.Name, version)
	}
	s, err := NewSchema(props)
	if err != nil {
		return nil, fmt.Errorf("crds: %s %s: %w", crd.Name, version, err)
	}
	return s, nil
}

// NewSchema builds a Schema from a CRD version's openAPIV3Schema. It fails where the API server would
// refuse the CRD: a schema that is not structural.
func NewSchema(props *apiextensionsv1.JSONSchemaProps) (*Schema, error) {
	var internal apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(props, &internal, nil); err != nil {
		return nil, err
	}
	st, err := structuralschema.NewStructural(&internal)
	if err != nil {
		return nil, err
	}
	if errs := structuralschema.ValidateStructural(nil, st); len(errs) > 0 {
		return nil, fmt.Errorf("not a structural schema: %w", errs.ToAggregate())
	}
	v, _, err := apiservervalidation.NewSchemaValidator(&internal)
	if err != nil {
		return nil, err
	}
	return &Schema{structural: st, openAPI: v, cel: cel.NewValidator(st, true, celconfig.PerCallLimit)}, nil
}

// Structural is the structural schema (what the API server prunes with).
func (s *Schema) Structural() *structuralschema.Structural { return s.structural }

// Check returns what the API server rejects in obj (an object decoded from JSON as the API server decodes
// it, with sigs.k8s.io/json's UnmarshalCaseSensitivePreserveInts: integers as int64, which CEL rules
// need), in the API server's words and order: fields the schema does not have (what
// it prunes, and rejects under `kubectl apply`'s default fieldValidation=Strict); then, on the pruned
// object with the schema's defaults applied (CEL rules read defaulted fields), OpenAPI violations and CEL
// rules. obj is not modified.
func (s *Schema) Check(ctx context.Context, obj map[string]any) field.ErrorList {
	var errs field.ErrorList
	pruned := deepCopyJSON(obj).(map[string]any)
	for _, p := range pruning.PruneWithOptions(pruned, s.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}) {
		errs = append(errs, field.Invalid(nil, nil, "unknown field \""+p+"\""))
	}
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(pruned, s.structural)
	structuraldefaulting.Default(pruned, s.structural)
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, pruned, s.openAPI)...)
	if s.cel != nil {
		celErrs, _ := s.cel.Validate(ctx, nil, s.structural, pruned, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	return errs
}

func deepCopyJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopyJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopyJSON(e)
		}
		return out
	}
	return v
}
