package collector

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/hazwatch/edgecollector/config"
)

// statusAuth guards the status listener: a bearer token (status.token_file)
// and/or HTTP basic auth (status.user, status.password_file). The files are
// read when the listener starts; there is no default password. With
// neither configured the handler is open (validate allows that only on
// loopback).
type statusAuth struct {
	token    [32]byte // SHA-256 of the token
	hasToken bool
	user     string
	pass     [32]byte // SHA-256 of the password
	hasPass  bool
}

// readSecret reads the first line of a secret file; an empty one is an
// error (an empty password would let anyone in).
func readSecret(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("status listener: %s: %w", what, err)
	}
	s, _, _ := strings.Cut(string(b), "\n")
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("status listener: %s %s is empty", what, path)
	}
	return s, nil
}

func loadStatusAuth(cfg *config.Config) (*statusAuth, error) {
	a := &statusAuth{user: cfg.Status.User}
	if f := cfg.Status.TokenFile; f != "" {
		t, err := readSecret(cfg.Resolve(f), "token_file")
		if err != nil {
			return nil, err
		}
		a.token, a.hasToken = sha256.Sum256([]byte(t)), true
	}
	if f := cfg.Status.PasswordFile; f != "" {
		p, err := readSecret(cfg.Resolve(f), "password_file")
		if err != nil {
			return nil, err
		}
		a.pass, a.hasPass = sha256.Sum256([]byte(p)), true
	}
	return a, nil
}

// allowed reports whether r carries valid credentials (always, when none
// are configured). Comparisons are of fixed-length hashes in constant time.
func (a *statusAuth) allowed(r *http.Request) bool {
	if !a.hasToken && !a.hasPass {
		return true
	}
	h := r.Header.Get("Authorization")
	if a.hasToken {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			sum := sha256.Sum256([]byte(strings.TrimSpace(t)))
			if subtle.ConstantTimeCompare(sum[:], a.token[:]) == 1 {
				return true
			}
		}
	}
	if a.hasPass {
		if u, p, ok := r.BasicAuth(); ok {
			sum := sha256.Sum256([]byte(p))
			userOK := subtle.ConstantTimeCompare([]byte(u), []byte(a.user)) == 1
			if subtle.ConstantTimeCompare(sum[:], a.pass[:]) == 1 && userOK {
				return true
			}
		}
	}
	return false
}

func (a *statusAuth) wrap(h http.Handler) http.Handler {
	if !a.hasToken && !a.hasPass {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.allowed(r) {
			if a.hasPass {
				w.Header().Set("WWW-Authenticate", `Basic realm="edgecollector status", charset="UTF-8"`)
			} else {
				w.Header().Set("WWW-Authenticate", `Bearer realm="edgecollector status"`)
			}
			http.Error(w, "unauthorized: this status listener needs credentials (status.token_file or status.user/password_file)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
