// Package iam authenticates callers of herald's HTTP APIs the way Open
// Integration Hub's @openintegrationhub/iam-utils does: a bearer token is
// introspected at OIH's IAM (basic or OIDC), and the permission rules of
// iam-utils (admin = permission "all", tenant admins limited to the common
// permissions) decide what the caller may do. StaticToken is the
// authenticator of the embedded default, when no IAM is configured.
package iam

import (
	"context"
	"net/http"
	"slices"
	"strings"
)

// Permissions with a meaning of their own in OIH.
const (
	// PermissionAll makes its holder an admin (iam-utils'
	// DEFAULT_PERMISSIONS.ADMIN).
	PermissionAll = "all"
	// PermissionTenantAll makes its holder a tenant admin, who holds every
	// permission of the common list (CommonPermissions).
	PermissionTenantAll = "tenant.all"
	// RoleAdmin is the role OIH's audit log (and its tests) took for an
	// admin. Real IAM introspection never sends a role; it is honoured for
	// compatibility with identities that do.
	RoleAdmin = "ADMIN"
)

// CommonPermissions returns iam-utils' "common" permissions: the only ones
// a tenant admin (PermissionTenantAll) holds without being granted them.
// Audit-log permissions (logs.read, logs.push) are not among them, so a
// tenant admin needs them granted explicitly, as in OIH.
func CommonPermissions() []string { return slices.Clone(commonPermissions) }

var commonPermissions = []string{
	"tenant.all",
	"tenant.account.read", "tenant.account.create", "tenant.account.update", "tenant.account.delete",
	"tenant.membership.create", "tenant.membership.update", "tenant.membership.delete",
	"tenant.profile.read", "tenant.profile.update", "tenant.profile.delete",
	"tenant.roles.read", "tenant.roles.create", "tenant.roles.update", "tenant.roles.delete",
	"tenant.flows.read", "tenant.flows.create", "tenant.flows.update", "tenant.flows.delete",
	"metadata.domains.crud",
	"secrets.secret.readRaw", "secrets.authClient.readRaw",
	"rds.rawRecord.read", "rds.rawRecord.write",
}

// User is an authenticated caller.
type User struct {
	// Sub is the caller's IAM id: the introspection's sub, else its _id.
	// It is never empty for a user an Authenticator returns.
	Sub string
	// Username is the account's username (an e-mail address in OIH).
	Username string
	// Tenant is the caller's current tenant: the tenant of the first
	// active membership when the identity has memberships, else its tenant
	// field; "" for none.
	Tenant string
	// Permissions are the caller's permissions (never nil).
	Permissions []string
	// Role is the identity's role field, when it has one (legacy IAM and
	// OIH's test mocks; real introspection sends none).
	Role string
	// IsAdmin is set when Permissions include PermissionAll, as iam-utils
	// computes user.isAdmin. Admin also honours Role.
	IsAdmin bool
	// IsTenantAdmin is set when Permissions include PermissionTenantAll.
	IsTenantAdmin bool
	// Raw is the introspection response as iam-utils sees it (the body
	// merged with body.claims). Read only; nil for a static token.
	Raw map[string]any
}

// Admin reports whether u may see and do everything: the permission "all"
// (what IAM really grants admins), or the role "ADMIN" (what OIH's
// audit-log tests send).
func (u *User) Admin() bool {
	if u == nil {
		return false
	}
	return u.IsAdmin || slices.Contains(u.Permissions, PermissionAll) || u.Role == RoleAdmin
}

// TenantAdmin reports whether u holds PermissionTenantAll.
func (u *User) TenantAdmin() bool {
	if u == nil {
		return false
	}
	return u.IsTenantAdmin || slices.Contains(u.Permissions, PermissionTenantAll)
}

// Can reports whether u holds every one of perms, with iam-utils' hasAll
// rules: an admin can do everything; a tenant admin can do whatever is in
// CommonPermissions; anyone else needs each permission granted. Can with
// no permissions is true for any non-nil user.
func (u *User) Can(perms ...string) bool {
	if u == nil {
		return false
	}
	if u.Admin() {
		return true
	}
	if u.TenantAdmin() && allIn(perms, commonPermissions) {
		return true
	}
	return allIn(perms, u.Permissions)
}

// CanAny reports whether u holds at least one of perms (iam-utils'
// hasOneOf): an admin always does.
func (u *User) CanAny(perms ...string) bool {
	if u == nil {
		return false
	}
	if u.Admin() {
		return true
	}
	for _, p := range perms {
		if slices.Contains(u.Permissions, p) {
			return true
		}
	}
	return false
}

func allIn(required, held []string) bool {
	for _, p := range required {
		if !slices.Contains(held, p) {
			return false
		}
	}
	return true
}

// Authenticator identifies the caller of an HTTP request. On failure it
// returns an *Error carrying the status and message OIH's iam-utils
// answers with.
type Authenticator interface {
	Authenticate(ctx context.Context, r *http.Request) (*User, error)
}

// BearerToken returns the token of r's Authorization header as iam-utils
// reads it: the header split on single spaces, and the second part taken
// whatever the first (the scheme is not checked). It fails with
// ErrMissingAuthorization or ErrInvalidAuthorization.
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", ErrMissingAuthorization
	}
	parts := strings.Split(h, " ")
	if len(parts) < 2 {
		return "", ErrInvalidAuthorization
	}
	return parts[1], nil
}
