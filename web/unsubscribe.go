package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
)

// ErrBadToken is returned for an unsubscribe token that was not signed by
// this followupd or does not belong to the contact.
var ErrBadToken = errors.New("web: invalid unsubscribe token")

const macLen = 16

// UnsubscribeToken signs a contact's id and email: the token can neither be
// forged nor moved to another contact, and it holds no readable address.
func UnsubscribeToken(secret string, contactID int64, email string) string {
	buf := make([]byte, 8, 8+macLen)
	binary.BigEndian.PutUint64(buf, uint64(contactID))
	buf = append(buf, unsubscribeMAC(secret, contactID, email)...)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// UnsubscribeURL is the link put in List-Unsubscribe and templates.
func UnsubscribeURL(baseURL, secret string, contactID int64, email string) string {
	return strings.TrimRight(baseURL, "/") + "/u/" + UnsubscribeToken(secret, contactID, email)
}

// TokenContactID reads the contact id out of a token without checking it;
// VerifyUnsubscribeToken checks it once the contact's email is known.
func TokenContactID(token string) (int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 8+macLen {
		return 0, ErrBadToken
	}
	return int64(binary.BigEndian.Uint64(raw[:8])), nil
}

// VerifyUnsubscribeToken checks a token against the contact it names, in
// constant time.
func VerifyUnsubscribeToken(secret, token string, contactID int64, email string) error {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 8+macLen || int64(binary.BigEndian.Uint64(raw[:8])) != contactID {
		return ErrBadToken
	}
	if !hmac.Equal(raw[8:], unsubscribeMAC(secret, contactID, email)) {
		return ErrBadToken
	}
	return nil
}

func unsubscribeMAC(secret string, contactID int64, email string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	var id [8]byte
	binary.BigEndian.PutUint64(id[:], uint64(contactID))
	m.Write([]byte("followupd-unsubscribe-v1\x00"))
	m.Write(id[:])
	m.Write([]byte(strings.ToLower(email)))
	return m.Sum(nil)[:macLen]
}
