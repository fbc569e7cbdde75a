// Package jwttest is a JSON Web Token issuer for tests: a signing key, its public JSON Web Key Set (what a
// RequestAuthentication gives inline as jwks) and tokens with the claims a test chooses.
package jwttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Issuer signs tokens with one key.
type Issuer struct {
	// Name is the iss claim of its tokens.
	Name string
	kid  string
	alg  jose.SignatureAlgorithm
	key  crypto.Signer
}

// New returns an issuer named name signing with a fresh key for alg (RS256 or ES256).
func New(name string, alg jose.SignatureAlgorithm) (*Issuer, error) {
	var key crypto.Signer
	var err error
	switch alg {
	case jose.RS256:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("jwttest: unsupported algorithm %s", alg)
	}
	if err != nil {
		return nil, err
	}
	return &Issuer{Name: name, kid: fmt.Sprintf("%s-%d", alg, time.Now().UnixNano()), alg: alg, key: key}, nil
}

// JWKS is the public key set, as JSON.
func (i *Issuer) JWKS() string {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: i.key.Public(), KeyID: i.kid, Algorithm: string(i.alg), Use: "sig"}}}
	b, err := json.Marshal(set)
	if err != nil {
		panic(err) // a public RSA or EC key always marshals
	}
	return string(b)
}

// Token signs claims; iss defaults to the issuer's name, exp to an hour from now.
func (i *Issuer) Token(claims map[string]any) string {
	c := map[string]any{"iss": i.Name, "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	payload, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: i.alg, Key: i.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", i.kid))
	if err != nil {
		panic(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		panic(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return s
}
