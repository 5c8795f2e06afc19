package wordcount

import (
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"

	"github.com/spillway/spillway/examples/stream"
)

// Defaults of Config.
const (
	DefaultWords      = 1_000_000
	DefaultVocabulary = 200_000
	// DefaultSkew is the Zipf exponent s of word frequencies (natural language is close to 1;
	// math/rand/v2's Zipf needs s > 1).
	DefaultSkew = 1.1
)

// Config describes a generated text: Words words drawn from a vocabulary of Vocabulary distinct
// words with Zipf-distributed frequencies (the word of rank k has probability ∝ (1+k)^-Skew).
// Its zero value means the defaults.
type Config struct {
	// Words is the number of words generated. 0 means DefaultWords.
	Words int64
	// Vocabulary is the number of distinct words that can occur. 0 means DefaultVocabulary.
	Vocabulary int64
	// Skew is the Zipf exponent; it must be > 1. 0 means DefaultSkew.
	Skew float64
	// Seed selects the text.
	Seed uint64
}

// Validate reports every invalid field, naming it and its value (errors.Join).
func (c Config) Validate() error {
	var errs []error
	if c.Words < 0 {
		errs = append(errs, fmt.Errorf("wordcount: Config.Words %d is negative", c.Words))
	}
	if c.Vocabulary < 0 {
		errs = append(errs, fmt.Errorf("wordcount: Config.Vocabulary %d is negative", c.Vocabulary))
	}
	if c.Skew != 0 && !(c.Skew > 1) {
		errs = append(errs, fmt.Errorf("wordcount: Config.Skew %g must be > 1", c.Skew))
	}
	return errors.Join(errs...)
}

// WithDefaults returns c with every zero field replaced by its default.
func (c Config) WithDefaults() Config {
	if c.Words == 0 {
		c.Words = DefaultWords
	}
	if c.Vocabulary == 0 {
		c.Vocabulary = DefaultVocabulary
	}
	if c.Skew == 0 {
		c.Skew = DefaultSkew
	}
	return c
}

// Text generates the words of one Config. Word w's value depends only on the seed and w, so the
// text split over any number of map tasks is the same text. It is safe for concurrent use.
type Text struct {
	cfg Config
}

// NewText returns the text of cfg (zero fields take their defaults), or cfg's validation error.
func NewText(cfg Config) (*Text, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Text{cfg: cfg.WithDefaults()}, nil
}

// Config returns the text's configuration with defaults filled in.
func (t *Text) Config() Config { return t.cfg }

// Words returns words [from, to) of the text in order. It panics unless 0 <= from <= to <=
// Config.Words.
func (t *Text) Words(from, to int64) iter.Seq[string] {
	if from < 0 || from > to || to > t.cfg.Words {
		panic(fmt.Sprintf("wordcount: word range [%d, %d) outside [0, %d)", from, to, t.cfg.Words))
	}
	return stream.Range(t.cfg.Seed, from, to, func(r *rand.Rand) func() string {
		z := rand.NewZipf(r, t.cfg.Skew, 1, uint64(t.cfg.Vocabulary-1))
		return func() string { return Word(z.Uint64()) }
	})
}

// Split returns the words of split i of n equal consecutive splits (the input partition of map
// task i). It panics unless 0 <= i < n.
func (t *Text) Split(i, n int) iter.Seq[string] {
	return t.Words(stream.SplitRange(t.cfg.Words, i, n))
}

// syllables spell words: 32 two-letter syllables, so each carries 5 bits of the rank.
const syllables = "kalominerusativobadefugahijokulemanopiqures" + "itounvewaxiyozearelos"

// Word returns the word of rank k: pronounceable syllables, short for frequent words (the most
// frequent words of a language are short too).
func Word(k uint64) string {
	b := make([]byte, 0, 16)
	for {
		i := 2 * (k & 31)
		b = append(b, syllables[i:i+2]...)
		k >>= 5
		if k == 0 {
			return string(b)
		}
		k-- // bijective numeration: every rank gets a distinct word
	}
}

// Count counts the words of the whole text in a Go map: the model Run is checked against.
func Count(t *Text) map[string]int64 {
	counts := make(map[string]int64)
	for w := range t.Words(0, t.cfg.Words) {
		counts[w]++
	}
	return counts
}
