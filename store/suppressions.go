package store

import (
	"context"
	"fmt"
	"strings"
)

// Suppress records that value, an address or a domain (kind "address" or
// "domain"; empty guesses from the '@'), must never be written to, and
// marks the matching contacts suppressed. Suppressing a value again changes
// nothing: the first reason stays.
func (s *Store) Suppress(ctx context.Context, value, kind, reason string) error {
	return s.InTx(ctx, func(tx *Tx) error { return tx.Suppress(ctx, value, kind, reason) })
}

// Suppress is Store.Suppress inside the transaction.
func (tx *Tx) Suppress(ctx context.Context, value, kind, reason string) error {
	value = NormalizeEmail(value)
	if kind == "" {
		kind = SuppressDomain
		if strings.Contains(value, "@") {
			kind = SuppressAddress
		}
	}
	switch kind {
	case SuppressAddress:
		if err := validEmail(value); err != nil {
			return fmt.Errorf("store: unable to suppress: %w", err)
		}
	case SuppressDomain:
		value = strings.TrimPrefix(value, "@")
		if value == "" || strings.ContainsAny(value, "@ \t") {
			return fmt.Errorf("store: unable to suppress: invalid domain %q", value)
		}
	default:
		return fmt.Errorf("store: unable to suppress %s: unknown kind %q (want %q or %q)", value, kind, SuppressAddress, SuppressDomain)
	}
	r := tx.r
	now := r.now()
	if _, err := r.exec(ctx, r.q.insertSuppression, value, kind, reason, now); err != nil {
		return fmt.Errorf("store: unable to suppress %s: %w", value, classify(err))
	}
	var err error
	if kind == SuppressAddress {
		_, err = r.exec(ctx, r.q.suppressAddress, now, value)
	} else {
		_, err = r.exec(ctx, r.q.suppressDomain, now, "%@"+escapeLike(value))
	}
	if err != nil {
		return fmt.Errorf("store: unable to mark contacts of %s suppressed: %w", value, err)
	}
	return nil
}

// escapeLike makes s match itself only in a LIKE pattern with ESCAPE '\'
// (a domain may contain '_', which LIKE reads as any character).
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// IsSuppressed reports whether email must not be written to: its address or
// its domain is suppressed, or its contact is marked suppressed (an import
// can set the flag without a suppression row).
func (s *Store) IsSuppressed(ctx context.Context, email string) (bool, error) {
	return s.runner(s.db).isSuppressed(ctx, email)
}

func (r *runner) isSuppressed(ctx context.Context, email string) (bool, error) {
	email = NormalizeEmail(email)
	domain := email[strings.LastIndexByte(email, '@')+1:]
	var yes bool
	if err := r.get(ctx, &yes, r.q.isSuppressed, email, domain, email); err != nil {
		return false, fmt.Errorf("store: unable to check the suppression of %s: %w", email, err)
	}
	return yes, nil
}

// Suppressions lists every suppressed address and domain, oldest first.
func (s *Store) Suppressions(ctx context.Context) ([]Suppression, error) {
	var list []Suppression
	if err := s.runner(s.db).selectRows(ctx, &list, s.q.listSuppressions); err != nil {
		return nil, fmt.Errorf("store: unable to list suppressions: %w", err)
	}
	for i := range list {
		utc(&list[i].CreatedAt)
	}
	return list, nil
}
