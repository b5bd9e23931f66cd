package surgewall

import (
	"sync"
)

// BreakerRegistry holds one breaker per key (per endpoint, per host), made on first use
// from a template of options plus per-key overrides. It lives in Go: a map of *Breaker,
// each a full named library breaker (about a kilobyte, exact windows of any size, its own
// Metrics, ID and events, every Breaker method), and it never evicts. Safe for concurrent
// use; exactly one breaker is made per key, also under races.
//
// Use it for a few keys (tens, hundreds) that each deserve a full breaker. For many keys
// (per user, per endpoint of a large API) use KeyedBreaker: a few dozen bytes per key in
// the library, idle keys evicted by Sweep, a cap with a shared overflow, at the price of
// an approximate two-bucket window (at most 128 minimum calls, a count window of 510; see
// KeyedBreaker) and aggregate metrics.
type BreakerRegistry struct {
	template  []Option
	maxKeys   int
	overrides map[string][]Option
	mu        sync.RWMutex
	breakers  map[string]*Breaker
	closed    bool
}

// NewBreakerRegistry creates a registry whose breakers are made with the template options
// (those NewBreaker takes), then a key's WithOverride options. WithMaxKeys caps the keys
// (default: no cap); Get beyond it returns ErrRegistryFull. The options are checked here;
// the library checks the values when Get makes a breaker.
func NewBreakerRegistry(opts ...Option) (*BreakerRegistry, error) {
	if versionErr != nil {
		return nil, versionErr
	}
	s := collect(opts)
	if err := s.only(kindRegistry, "a breaker registry"); err != nil {
		return nil, err
	}
	overrides := map[string][]Option{}
	for _, o := range s.keyed.overrides {
		ov := collect(o.opts)
		if err := ov.only(kindBreaker, "the override for "+keyName(o.key, 0)); err != nil {
			return nil, err
		}
		overrides[o.key] = o.opts
	}
	return &BreakerRegistry{template: opts, maxKeys: s.keyed.maxKeys, overrides: overrides,
		breakers: map[string]*Breaker{}}, nil
}

// Get returns key's breaker, making it (named key) on first use.
func (r *BreakerRegistry) Get(key string) (*Breaker, error) {
	r.mu.RLock()
	b, ok := r.breakers[key]
	closed := r.closed
	r.mu.RUnlock()
	if ok {
		return b, nil
	}
	if closed {
		return nil, ErrClosed
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.breakers[key]; ok {
		return b, nil
	}
	if r.closed {
		return nil, ErrClosed
	}
	if r.maxKeys > 0 && len(r.breakers) >= r.maxKeys {
		return nil, ErrRegistryFull
	}
	b, err := newBreaker(key, collect(append(append([]Option(nil), r.template...), r.overrides[key]...)))
	if err != nil {
		return nil, err
	}
	r.breakers[key] = b
	return b, nil
}

// Len is the number of breakers held.
func (r *BreakerRegistry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.breakers)
}

// Range calls f for each key and breaker until f returns false.
func (r *BreakerRegistry) Range(f func(key string, b *Breaker) bool) {
	r.mu.RLock()
	snapshot := make(map[string]*Breaker, len(r.breakers))
	for k, b := range r.breakers {
		snapshot[k] = b
	}
	r.mu.RUnlock()
	for k, b := range snapshot {
		if !f(k, b) {
			return
		}
	}
}

// Remove closes and forgets key's breaker (a later Get makes a fresh one).
func (r *BreakerRegistry) Remove(key string) {
	r.mu.Lock()
	b := r.breakers[key]
	delete(r.breakers, key)
	r.mu.Unlock()
	if b != nil {
		b.Close()
	}
}

// Close closes every breaker; later Gets return ErrClosed. Idempotent.
func (r *BreakerRegistry) Close() error {
	r.mu.Lock()
	bs := r.breakers
	r.breakers, r.closed = map[string]*Breaker{}, true
	r.mu.Unlock()
	for _, b := range bs {
		b.Close()
	}
	return nil
}
