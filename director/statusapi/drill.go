package statusapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// The actions of a failover drill. lvsd serves them only on its unix
// socket (status_listen: unix:/run/lvsd/status.sock), never on TCP: the
// socket's file permissions (SocketMode, lvsd's user and group) are the
// authorisation, the same that guards the rest of lvsd's control, and
// nothing on the network can reach them. A drill on another machine
// reaches the socket through ssh (ssh -L /tmp/lvs1.sock:/run/lvsd/status.sock).
//
//	POST   /vrrp/{instance}/step-down?hold=D   step down now, for D
//	DELETE /vrrp/{instance}/step-down          end the step-down now
//	POST   /bgp/{vip}/withdraw?hold=D          withdraw the VIP now, for D
//	DELETE /bgp/{vip}/withdraw                 announce it again (if healthy)

// Drill limits: a hold is at least MinDrillHold and at most MaxDrillHold;
// DefaultDrillHold without one.
const (
	MinDrillHold     = time.Second
	MaxDrillHold     = time.Hour
	DefaultDrillHold = time.Minute
)

// DrillAction is lvsd's answer to a drill action.
type DrillAction struct {
	// Kind is "vrrp-step-down" or "bgp-withdraw".
	Kind string `json:"kind"`
	// Target is the VRRP instance or the VIP.
	Target string `json:"target"`
	// Instances are the VRRP instances stepping down: the instance and
	// the other members of its sync group.
	Instances []string `json:"instances,omitempty"`
	// Active says whether the drill is on after the action; Until is when
	// it ends by itself (the hold), At when lvsd took the action.
	Active bool      `json:"active"`
	At     time.Time `json:"at"`
	Until  time.Time `json:"until,omitzero"`
	// Message says what lvsd did and what ends the drill.
	Message string `json:"message"`
}

// StepDown asks lvsd's VRRP instance to step down for hold (a master
// hands its VIPs over with a priority-0 advert and stays a backup with
// the lowest priority until the hold ends).
func (c *Client) StepDown(ctx context.Context, instance string, hold time.Duration) (DrillAction, error) {
	return c.drill(ctx, http.MethodPost, "/vrrp/"+url.PathEscape(instance)+"/step-down", hold)
}

// EndStepDown ends a step-down before its hold: the instance's priority
// comes back and it preempts again if its config says so.
func (c *Client) EndStepDown(ctx context.Context, instance string) (DrillAction, error) {
	return c.drill(ctx, http.MethodDelete, "/vrrp/"+url.PathEscape(instance)+"/step-down", 0)
}

// Withdraw asks lvsd to withdraw vip's BGP route for hold.
func (c *Client) Withdraw(ctx context.Context, vip string, hold time.Duration) (DrillAction, error) {
	return c.drill(ctx, http.MethodPost, "/bgp/"+url.PathEscape(vip)+"/withdraw", hold)
}

// EndWithdraw ends a withdraw before its hold: lvsd announces the VIP
// again if its services are healthy.
func (c *Client) EndWithdraw(ctx context.Context, vip string) (DrillAction, error) {
	return c.drill(ctx, http.MethodDelete, "/bgp/"+url.PathEscape(vip)+"/withdraw", 0)
}

func (c *Client) drill(ctx context.Context, method, path string, hold time.Duration) (DrillAction, error) {
	var a DrillAction
	target := c.base + path
	if hold > 0 {
		target += "?hold=" + url.QueryEscape(hold.String())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(nil))
	if err != nil {
		return a, fmt.Errorf("%s %s at %s: %w", method, path, c.base, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return a, fmt.Errorf("%s %s at %s: %w", method, path, c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return a, fmt.Errorf("%s %s at %s: reading the answer: %w", method, path, c.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return a, fmt.Errorf("%s %s at %s: %s: %s", method, path, c.base, resp.Status, e.Error)
		}
		return a, fmt.Errorf("%s %s at %s: %s (an lvsd that predates drills, or not lvsd)", method, path, c.base, resp.Status)
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return a, fmt.Errorf("%s %s at %s: decoding the answer: %w", method, path, c.base, err)
	}
	return a, nil
}
