package scripts

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Credential is the user and groups a program runs as.
type Credential struct {
	// User and Group name them, for logs and messages.
	User, Group string
	// UID and GID are the IDs the program gets.
	UID, GID uint32
	// Groups are its supplementary groups.
	Groups []uint32
}

// IsRoot reports whether the program runs as root.
func (c *Credential) IsRoot() bool { return c != nil && c.UID == 0 }

// String is "user:group" ("root:root", "lvsd_script:lvsd_script").
func (c *Credential) String() string {
	if c == nil {
		return "lvsd's own user"
	}
	return c.User + ":" + c.Group
}

// ParseUser splits "user" or "user:group" (as chown takes them).
func ParseUser(s string) (user, group string, err error) {
	user, group, _ = strings.Cut(s, ":")
	if user == "" || strings.ContainsAny(user, " \t\n/") || strings.Contains(group, ":") || strings.ContainsAny(group, " \t\n/") {
		return "", "", fmt.Errorf("%q is not a user: write a user name, or user:group, such as lvsd_script or lvsd_script:nogroup", s)
	}
	return user, group, nil
}

// LookupCredential resolves "user" or "user:group" to the IDs a program
// gets: the user's ID, the group's (default: the user's primary group)
// and the user's supplementary groups.
func LookupCredential(h Host, spec string) (*Credential, error) {
	user, group, err := ParseUser(spec)
	if err != nil {
		return nil, err
	}
	acct, err := h.LookupUser(user)
	if errors.Is(err, ErrUnknown) {
		return nil, fmt.Errorf("user %s does not exist: create it (useradd --system --no-create-home --shell /usr/sbin/nologin %s) or name another", user, user)
	} else if err != nil {
		return nil, fmt.Errorf("looking up user %s: %w", user, err)
	}
	c := &Credential{User: acct.Name, UID: acct.UID, GID: acct.GID, Groups: slices.Clone(acct.Groups)}
	if group == "" {
		c.Group = h.GroupName(acct.GID)
		if c.Group == "" {
			c.Group = fmt.Sprint(acct.GID)
		}
		return c, nil
	}
	gid, err := h.LookupGroup(group)
	if errors.Is(err, ErrUnknown) {
		return nil, fmt.Errorf("group %s does not exist: create it (groupadd --system %s) or name another", group, group)
	} else if err != nil {
		return nil, fmt.Errorf("looking up group %s: %w", group, err)
	}
	c.Group, c.GID = group, gid
	return c, nil
}
