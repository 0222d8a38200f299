package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/dbtest"
)

// vectorFile is testdata/vectors.json: entries of two chains as Append
// stored them, each with its canonical JSON, and an anchor of the first
// chain. The file was computed once; a change to the chain rule, or to the
// standard library's JSON escaping, breaks these tests instead of every
// stored chain.
type vectorFile struct {
	Entries []struct {
		Entry     Entry  `json:"entry"`
		Canonical string `json:"canonical"`
	} `json:"entries"`
	Anchor struct {
		Seed      string `json:"seed"`
		Chain     string `json:"chain"`
		Seq       int64  `json:"seq"`
		Head      string `json:"head"`
		Signature string `json:"signature"`
	} `json:"anchor"`
}

func loadVectors(t *testing.T) vectorFile {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Entries) == 0 {
		t.Fatal("no vectors")
	}
	return v
}

func TestVectors_Hashes(t *testing.T) {
	v := loadVectors(t)
	byChain := map[string][]Entry{}
	for _, vec := range v.Entries {
		e := vec.Entry
		if got := string(canonicalJSON(e)); got != vec.Canonical {
			t.Errorf("%s seq %d: canonical JSON\n%s\nwant\n%s", e.Chain, e.Seq, got, vec.Canonical)
		}
		// The rule restated independently of hashEntry, on the committed
		// bytes.
		prev, err := hex.DecodeString(e.PrevHash)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(slices.Concat(prev, binary.BigEndian.AppendUint64(nil, uint64(e.Seq)), []byte(vec.Canonical)))
		if got := hex.EncodeToString(sum[:]); got != e.Hash {
			t.Errorf("%s seq %d: SHA-256 of the committed bytes is %s, want %s", e.Chain, e.Seq, got, e.Hash)
		}
		if got, err := hashEntry(e); err != nil || got != e.Hash {
			t.Errorf("%s seq %d: hashEntry = %s, %v; want %s", e.Chain, e.Seq, got, err, e.Hash)
		}
		byChain[e.Chain] = append(byChain[e.Chain], e)
	}
	for chain, entries := range byChain {
		if r, err := Verify(context.Background(), sliceLog{entries: entries}, chain, nil, nil); err != nil || r.FirstBroken != 0 {
			t.Errorf("verify %s = %+v, %v", chain, r, err)
		}
	}
}

func TestVectors_Anchor(t *testing.T) {
	v := loadVectors(t)
	seed, err := hex.DecodeString(v.Anchor.Seed)
	if err != nil {
		t.Fatal(err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	a := SignAnchor(priv, v.Anchor.Chain, v.Anchor.Seq, v.Anchor.Head)
	if got := hex.EncodeToString(a.Signature); got != v.Anchor.Signature {
		t.Errorf("signature %s, want %s", got, v.Anchor.Signature)
	}
	var chain []Entry
	for _, vec := range v.Entries {
		if vec.Entry.Chain == v.Anchor.Chain {
			chain = append(chain, vec.Entry)
		}
	}
	r, err := Verify(context.Background(), sliceLog{entries: chain}, a.Chain, []Anchor{a}, priv.Public().(ed25519.PublicKey))
	if err != nil || r.FirstBroken != 0 {
		t.Errorf("verify with the anchor = %+v, %v", r, err)
	}
}

// Appending the vectors' entries anew gives the same hashes, in memory and
// through PostgreSQL's columns and back.
func TestVectors_Append(t *testing.T) {
	for name, newLog := range map[string]func(t *testing.T) Log{
		"memory":   func(t *testing.T) Log { return NewMemoryLog() },
		"postgres": func(t *testing.T) Log { return NewPostgresLog(dbtest.Migrated(t)) },
	} {
		t.Run(name, func(t *testing.T) {
			l := newLog(t)
			var want []Entry
			for _, vec := range loadVectors(t).Entries {
				e := vec.Entry
				e.Seq, e.PrevHash, e.Hash = 0, "", ""
				if got := mustAppend(t, l, e); got.Hash != vec.Entry.Hash {
					t.Errorf("%s seq %d: appended with hash %s, want %s", got.Chain, got.Seq, got.Hash, vec.Entry.Hash)
				}
				want = append(want, vec.Entry)
			}
			var got []Entry
			for _, chain := range []string{"acme", "platform"} {
				got = append(got, walkAll(t, l, chain)...)
			}
			if !sameEntries(got, want) {
				t.Errorf("stored entries\n%v\nwant\n%v", got, want)
			}
		})
	}
}

// canonicalEntry's fields must stay in the order of their keys, for
// encoding/json writes them in declaration order.
func TestCanonicalKeysSorted(t *testing.T) {
	typ := reflect.TypeFor[canonicalEntry]()
	var keys []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		keys = append(keys, name)
	}
	if !slices.IsSorted(keys) {
		t.Errorf("canonical keys %v are not sorted", keys)
	}
	if n := reflect.TypeFor[Entry]().NumField() - 2; len(keys) != n {
		t.Errorf("canonical JSON has %d keys, want every field of Entry but PrevHash and Hash (%d)", len(keys), n)
	}
}
