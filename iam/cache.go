package iam

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// tokenCache holds successful introspections for a fixed time after they
// were made (node-cache's stdTTL: a hit does not extend it), at most max of
// them; when full, the oldest goes first. Keys are SHA-256 digests of the
// tokens, so the cache keeps no bearer token in memory.
type tokenCache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[[sha256.Size]byte]*list.Element
	order   *list.List // of *cached, oldest (first to expire) in front
}

type cached struct {
	key     [sha256.Size]byte
	user    *User
	expires time.Time
}

func newTokenCache(ttl time.Duration, max int, now func() time.Time) *tokenCache {
	return &tokenCache{
		ttl:     ttl,
		max:     max,
		now:     now,
		entries: make(map[[sha256.Size]byte]*list.Element),
		order:   list.New(),
	}
}

func (c *tokenCache) get(token string) (*User, bool) {
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cached)
	if !c.now().Before(e.expires) {
		c.order.Remove(el)
		delete(c.entries, key)
		return nil, false
	}
	return e.user.clone(), true
}

func (c *tokenCache) set(token string, u *User) {
	key := sha256.Sum256([]byte(token))
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		c.order.Remove(el)
		delete(c.entries, key)
	}
	// Every entry lives ttl from its insertion, so the list is in expiry
	// order: drop the expired, then the oldest while full.
	for el := c.order.Front(); el != nil; el = c.order.Front() {
		e := el.Value.(*cached)
		if now.Before(e.expires) && c.order.Len() < c.max {
			break
		}
		c.order.Remove(el)
		delete(c.entries, e.key)
	}
	c.entries[key] = c.order.PushBack(&cached{key: key, user: u.clone(), expires: now.Add(c.ttl)})
}

// len returns the number of cached identities, expired or not (tests).
func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
