package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestForbiddenPatterns walks the Go sources (tests excluded) for patterns
// the security design bans: the pgx simple protocol (SUP-2), disabled TLS
// verification, pattern subscriptions on Redis (ISO-3), and SQL built with
// fmt (SUP-2). authz has its own test for signature comparisons (SIG-1).
func TestForbiddenPatterns(t *testing.T) {
	banned := []struct {
		why string
		re  *regexp.Regexp
	}{
		{"pgx simple protocol allows injection", regexp.MustCompile(`QueryExecModeSimpleProtocol`)},
		{"TLS verification must stay on", regexp.MustCompile(`InsecureSkipVerify`)},
		{"pattern subscriptions could cross apps", regexp.MustCompile(`(?i)\bPSubscribe\b|"psubscribe"`)},
		{"SQL must be parameterised, never formatted", regexp.MustCompile(`fmt\.Sprintf\(\s*"(?i)\s*(select|insert|update|delete)\b`)},
	}
	root := filepath.Join("..", "..")
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		for i, line := range strings.Split(string(src), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "//") {
				continue
			}
			for _, b := range banned {
				if b.re.MatchString(line) {
					t.Errorf("%s:%d: %s: %s", path, i+1, b.why, strings.TrimSpace(line))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 30 {
		t.Fatalf("only %d Go files checked: the walk missed the tree", checked)
	}
}
