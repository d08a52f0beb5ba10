package scripts

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
)

// OS is the running system's Host: its filesystem, its user database
// (os/user: /etc/passwd and /etc/group, or NSS with cgo) and lvsd's
// effective user ID.
func OS() Host { return osHost{} }

type osHost struct{}

func (osHost) LookupUser(name string) (Account, error) {
	u, err := user.Lookup(name)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		return Account{}, fmt.Errorf("user %s: %w", name, ErrUnknown)
	} else if err != nil {
		return Account{}, err
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return Account{}, fmt.Errorf("user %s: %w", name, err)
	}
	a := Account{Name: u.Username, UID: uint32(uid), GID: uint32(gid)}
	ids, err := u.GroupIds()
	if err != nil {
		return Account{}, fmt.Errorf("listing the groups of user %s: %w", name, err)
	}
	for _, id := range ids {
		g, err := strconv.ParseUint(id, 10, 32)
		if err != nil {
			return Account{}, fmt.Errorf("user %s: group %q: %w", name, id, err)
		}
		a.Groups = append(a.Groups, uint32(g))
	}
	return a, nil
}

func (osHost) LookupGroup(name string) (uint32, error) {
	g, err := user.LookupGroup(name)
	var unknown user.UnknownGroupError
	if errors.As(err, &unknown) {
		return 0, fmt.Errorf("group %s: %w", name, ErrUnknown)
	} else if err != nil {
		return 0, err
	}
	gid, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("group %s: %w", name, err)
	}
	return uint32(gid), nil
}

func (osHost) UserName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return u.Username
	}
	return ""
}

func (osHost) GroupName(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		return g.Name
	}
	return ""
}
