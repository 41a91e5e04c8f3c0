package web

import "testing"

func TestUnsubscribeTokenIsBoundAndUnforgeable(t *testing.T) {
	const secret = "0123456789abcdef-secret"
	tok := UnsubscribeToken(secret, 42, "Ann@Example.com")
	if err := VerifyUnsubscribeToken(secret, tok, 42, "ann@example.com"); err != nil {
		t.Fatalf("a token we signed is refused: %v", err)
	}
	if id, err := TokenContactID(tok); err != nil || id != 42 {
		t.Fatalf("TokenContactID = %d, %v", id, err)
	}
	for name, check := range map[string]error{
		"other contact id":   VerifyUnsubscribeToken(secret, tok, 43, "ann@example.com"),
		"other email":        VerifyUnsubscribeToken(secret, tok, 42, "bob@example.com"),
		"other secret":       VerifyUnsubscribeToken("another-secret-of-16+", tok, 42, "ann@example.com"),
		"moved to contact 7": VerifyUnsubscribeToken(secret, UnsubscribeToken(secret, 7, "x@y.z")[:11]+tok[11:], 7, "x@y.z"),
		"garbage":            VerifyUnsubscribeToken(secret, "not-a-token", 42, "ann@example.com"),
	} {
		if check == nil {
			t.Errorf("%s: token accepted", name)
		}
	}
}
