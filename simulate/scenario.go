// Package simulate generates a realistic, catalogue-valid Open Integration
// Hub event stream: tenants and users come and go, secrets are stored and
// read, domains and schemas are defined, flows are created, started,
// stopped and deleted, each event published under the serviceName its OIH
// publisher really uses. The stream is a function of a seed, so a demo, a
// test and a benchmark can replay the same story.
//
// It is what `herald simulate` publishes, and what tests and benchmarks of
// the audit log feed it with. Run publishes it (or any other Source of
// events, such as `herald publish --count`'s copies of one event) without
// waiting for each confirm, at a rate, counting what the broker confirmed.
package simulate

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/heraldhq/herald/event"
)

// The serviceNames the scenario publishes as: what each OIH publisher puts
// in headers.serviceName (IAM publishes as "accounts").
const (
	ServiceIAM          = "accounts"
	ServiceSecrets      = "secret-service"
	ServiceMetadata     = "meta-data-repository"
	ServiceFlowRepo     = "flow-repository"
	ServiceOrchestrator = "component-orchestrator"
)

// Services returns every serviceName the scenario publishes as.
func Services() []string {
	return []string{ServiceIAM, ServiceSecrets, ServiceMetadata, ServiceFlowRepo, ServiceOrchestrator}
}

// Options shape a scenario. The zero value is a small platform: 4 tenants
// and 40 users, payloads enriched for the audit log.
type Options struct {
	// Tenants is how many tenants the story creates (default 4).
	Tenants int
	// Users is how many users the story keeps alive: it creates them up to
	// this number, then deletes and creates users at about the same pace
	// (default 40).
	Users int
	// OIHOnly publishes only what OIH's services really publish, exactly
	// as they build it: the names herald's catalogue adds from the seed and
	// OIH never sends (secret-service.*, metadata.domain.created,
	// flowrepo.flow.starting and .stopping, iam.user.assignedToTenant) are
	// left out, and no payload gains a field. By default the story mixes
	// both, and herald's canonical audited events carry payload user and
	// tenant where OIH leaves them out, so the audit log can show each
	// tenant its own story.
	OIHOnly bool
	// Now stamps the documents inside payloads (a tenant's createdAt, a
	// flow's updatedAt); default time.Now. Everything else in the story is
	// a function of the seed.
	Now func() time.Time
}

// Flow statuses as flow-repository keeps them.
const (
	flowInactive = "inactive"
	flowStarting = "starting"
	flowActive   = "active"
	flowStopping = "stopping"
)

type tenant struct {
	id, name, domain string
	admin            string // the first user, who creates the others
	users            []*user
}

type user struct {
	id, username string
	tenant       *tenant
	busy         int // flows of this user starting or stopping
}

type flow struct {
	id, name, description string
	tenant                string
	owner                 *user // nil once the owner was deleted
	status                string
	cron                  string
	nodes                 []node
	token                 string // the flow's IAM token while it runs
	createdAt             string
	updatedAt             string
}

type node struct {
	id, componentID, function, name, credentialsID string
}

type secret struct {
	id, name string
	owner    *user
}

type domain struct {
	id, name string
	tenant   *tenant
	owner    *user
	schemas  []string // URIs
}

type schema struct {
	id, uri string
	domain  *domain
}

type component struct {
	id, name  string
	functions []string
}

type token struct {
	id    string
	owner *user
}

// pending is an event the story has decided on and not yet emitted.
type pending struct {
	due, seq int
	ev       *event.Event
	// apply changes the story's state when the event is emitted, for
	// events that happen later than the decision that causes them
	// (flow.started after flow.starting).
	apply func()
}

// Scenario generates the story one event at a time. It is not safe for
// concurrent use.
type Scenario struct {
	rng  *rand.Rand
	opts Options

	step, seq int
	queue     []pending

	tenants    []*tenant
	users      []*user
	tokens     []token
	secrets    []*secret
	domains    []*domain
	schemas    []*schema
	flows      []*flow
	flowsIn    map[string]int // flows per status
	components []component

	nUsers, nTenants int // ever created, for unique names
}

// New returns the scenario for seed: the same seed and options give the
// same sequence of event names, serviceNames and payloads.
func New(seed int64, opts Options) *Scenario {
	if opts.Tenants <= 0 {
		opts.Tenants = 4
	}
	if opts.Users <= 0 {
		opts.Users = 40
	}
	if opts.Users < opts.Tenants {
		opts.Users = opts.Tenants
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Scenario{
		rng:     rand.New(rand.NewPCG(uint64(seed), 0x6865_7261_6c64)), // "herald"
		opts:    opts,
		flowsIn: make(map[string]int),
	}
	for _, c := range componentNames {
		s.components = append(s.components, component{id: s.objectID(), name: c.name, functions: c.functions})
	}
	return s
}

// Next returns the next event of the story. Its name, serviceName and
// payload are set; its id and createdAt are left for the publisher (a
// bus.Bus fills them), so that replaying a seed publishes new events
// rather than redeliveries of old ones.
func (s *Scenario) Next() *event.Event {
	s.step++
	for len(s.queue) == 0 || s.queue[0].due > s.step {
		s.act()
	}
	p := s.queue[0]
	s.queue = s.queue[1:]
	if p.apply != nil {
		p.apply()
	}
	return p.ev
}

// emit queues an event for now.
func (s *Scenario) emit(service, name string, payload any) { s.later(0, service, name, payload, nil) }

// later queues an event delay steps from now; apply, when not nil, runs
// when it is emitted.
func (s *Scenario) later(delay int, service, name string, payload any, apply func()) {
	b, err := json.Marshal(payload)
	if err != nil {
		// Payloads are maps and structs of strings built here.
		panic(fmt.Sprintf("simulate: marshal %s payload: %v", name, err))
	}
	s.seq++
	p := pending{
		due:   s.step + delay,
		seq:   s.seq,
		ev:    &event.Event{Headers: event.Headers{Name: name, ServiceName: service}, Payload: b},
		apply: apply,
	}
	// Keep the queue ordered by (due, seq); it holds a handful of items.
	i := len(s.queue)
	for i > 0 && s.queue[i-1].due > p.due {
		i--
	}
	s.queue = append(s.queue, pending{})
	copy(s.queue[i+1:], s.queue[i:])
	s.queue[i] = p
}

// act picks one thing that happens on the platform and queues its events
// for now. An action may queue none (a domain created under OIHOnly, which
// OIH never announces); Next then acts again.
func (s *Scenario) act() {
	nt, nu := len(s.tenants), len(s.users)
	idle, active := s.flowsIn[flowInactive], s.flowsIn[flowActive]
	type choice struct {
		weight int
		do     func()
	}
	choices := []choice{
		{s.wTenantCreate(), s.createTenant},
		{when(nt > 0, either(nu < s.opts.Users, 16, 2)), s.createUser},
		{s.wUserDelete(), s.deleteUser},
		{when(nu > 0, 2), s.modifyUser},
		{when(nu > 0, 8), s.login},
		{when(len(s.tokens) > 0, 2), s.logout},
		{when(len(s.tokens) > 0, 16), s.introspect},
		{when(nu > 0, 3), s.loginFailed},
		{when(nu > 0 && len(s.secrets) < 2*s.opts.Users, 6), s.createSecret},
		{when(len(s.secrets) > 0, 8), s.readSecret},
		{when(len(s.secrets) > s.opts.Users, 3), s.deleteSecret},
		{when(nu > 0 && len(s.domains) < 2*nt, 2), s.createDomain},
		{when(len(s.domains) > 0 && len(s.schemas) < 4*len(s.domains), 4), s.createSchema},
		{when(len(s.schemas) > 0, 2), s.modifySchema},
		{when(len(s.schemas) > 2*len(s.domains), 1), s.deleteSchema},
		{when(nu > 0 && len(s.flows) < 2*s.opts.Users, 6), s.createFlow},
		{when(idle > 0, 2), s.modifyFlow},
		{when(idle > 0, 8), s.startFlow},
		{when(active > 0, either(active > idle, 8, 5)), s.stopFlow},
		{when(idle > 0, either(len(s.flows) > s.opts.Users, 4, 1)), s.deleteFlow},
	}
	total := 0
	for _, c := range choices {
		total += c.weight
	}
	n := s.rng.IntN(total)
	for _, c := range choices {
		if n < c.weight {
			c.do()
			return
		}
		n -= c.weight
	}
}

func when(cond bool, weight int) int {
	if cond {
		return weight
	}
	return 0
}

func either(cond bool, a, b int) int {
	if cond {
		return a
	}
	return b
}

func (s *Scenario) wTenantCreate() int {
	switch {
	case len(s.tenants) == 0:
		return 1 // the only thing that can happen first
	case len(s.tenants) < s.opts.Tenants:
		return 6
	}
	return 0
}

func (s *Scenario) wUserDelete() int {
	nu := len(s.users)
	if nu <= s.opts.Users/2 || s.deletableUser() == nil {
		return 0
	}
	if nu >= s.opts.Users {
		return 3
	}
	return 1
}

// --- IAM ---------------------------------------------------------------

func (s *Scenario) createTenant() {
	s.nTenants++
	c := companies[(s.nTenants-1)%len(companies)]
	name := c
	if s.nTenants > len(companies) {
		name = fmt.Sprintf("%s %d", c, (s.nTenants-1)/len(companies)+1)
	}
	t := &tenant{id: s.objectID(), name: name, domain: slug(name) + ".example.com"}
	s.tenants = append(s.tenants, t)
	now := s.timestamp()
	// IAM sends the whole tenant document as payload.tenant (oih-events §1a).
	s.emit(ServiceIAM, "iam.tenant.created", map[string]any{
		"id": t.id,
		"tenant": map[string]any{
			"_id": t.id, "name": t.name, "confirmed": true, "status": "ACTIVE",
			"createdAt": now, "updatedAt": now, "__v": 0,
		},
	})
	// Its first user administers it.
	s.addUser(t)
}

func (s *Scenario) createUser() {
	// Fill the emptiest tenants first, with some randomness.
	t := s.tenants[s.rng.IntN(len(s.tenants))]
	if o := s.tenants[s.rng.IntN(len(s.tenants))]; len(o.users) < len(t.users) {
		t = o
	}
	s.addUser(t)
}

func (s *Scenario) addUser(t *tenant) {
	s.nUsers++
	first := firstNames[s.rng.IntN(len(firstNames))]
	last := lastNames[s.rng.IntN(len(lastNames))]
	u := &user{
		id:       s.objectID(),
		username: fmt.Sprintf("%s.%s%d@%s", strings.ToLower(first), strings.ToLower(last), s.nUsers, t.domain),
		tenant:   t,
	}
	t.users = append(t.users, u)
	if t.admin == "" {
		t.admin = u.id
	}
	s.users = append(s.users, u)
	created := map[string]any{"id": u.id, "username": u.username}
	s.enrich(created, "", t.id)
	s.emit(ServiceIAM, "iam.user.created", created)
	// OIH's route for this is commented out (oih-events §1a); herald's
	// catalogue keeps the seed's event, and it tells the tenant's story.
	if !s.opts.OIHOnly {
		s.emit(ServiceIAM, "iam.user.assignedToTenant", map[string]any{"user": u.id, "tenant": t.id})
	}
}

func (s *Scenario) modifyUser() {
	u := s.pickUser()
	p := map[string]any{"id": u.id}
	// IAM only sends username when the update body had one.
	if s.rng.IntN(3) == 0 {
		p["username"] = u.username
	}
	s.enrich(p, "", u.tenant.id)
	s.emit(ServiceIAM, "iam.user.modified", p)
}

func (s *Scenario) login() {
	u := s.pickUser()
	for _, t := range s.tokens {
		if t.owner == u {
			// sign() re-uses the existing token and prolongs it.
			s.emit(ServiceIAM, "iam.token.modified", s.enriched(map[string]any{"id": t.id}, u))
			return
		}
	}
	t := token{id: s.objectID(), owner: u}
	s.tokens = append(s.tokens, t)
	s.emit(ServiceIAM, "iam.token.created", s.enriched(map[string]any{"id": t.id}, u))
}

func (s *Scenario) logout() {
	t := s.tokens[s.rng.IntN(len(s.tokens))]
	s.dropTokens(t.owner)
	// deleteSessionToken sends the account, not the token id.
	s.emit(ServiceIAM, "iam.token.deleted", map[string]any{"account": t.owner.id})
}

func (s *Scenario) introspect() {
	t := s.tokens[s.rng.IntN(len(s.tokens))]
	// Every authenticated API call prolongs the caller's token.
	s.emit(ServiceIAM, "iam.token.modified", s.enriched(map[string]any{"id": t.id}, t.owner))
}

func (s *Scenario) loginFailed() {
	// payload.user is the submitted username, not an id (oih-events §1a);
	// now and then someone mistypes a name nobody has.
	name := s.pickUser().username
	if s.rng.IntN(5) == 0 {
		name = strings.ToLower(firstNames[s.rng.IntN(len(firstNames))]) + "@" + s.tenants[s.rng.IntN(len(s.tenants))].domain
	}
	s.emit(ServiceIAM, "iam.user.loginFailed", map[string]any{"user": name})
}

func (s *Scenario) deleteUser() {
	u := s.deletableUser()
	s.users = remove(s.users, u)
	u.tenant.users = remove(u.tenant.users, u)
	s.dropTokens(u)
	deleted := map[string]any{"id": u.id}
	s.enrich(deleted, "", u.tenant.id)
	s.emit(ServiceIAM, "iam.user.deleted", deleted)
	s.emit(ServiceIAM, "iam.token.deleted", map[string]any{"account": u.id})

	// flow-repository pulls the owner; owner-less active flows are
	// stopped (oih-events §5.6), the others are left alone.
	for _, f := range s.flows {
		if f.owner != u {
			continue
		}
		f.owner = nil
		if f.status == flowActive {
			s.stop(f, 1+s.rng.IntN(3), "")
		}
	}
	s.flows = filter(s.flows, func(f *flow) bool {
		if f.owner == nil && f.status == flowInactive {
			s.flowsIn[f.status]--
			return false
		}
		return true
	})
	// The secret-service means to delete the user's secrets but reads the
	// wrong key and does nothing (oih-events §3.3.1): no event.
	s.secrets = filter(s.secrets, func(x *secret) bool { return x.owner != u })
	for _, d := range s.domains {
		if d.owner == u {
			d.owner = nil
		}
	}
}

// --- secret-service ----------------------------------------------------

func (s *Scenario) createSecret() {
	u := s.pickUser()
	x := &secret{id: s.objectID(), owner: u, name: secretNames[s.rng.IntN(len(secretNames))]}
	s.secrets = append(s.secrets, x)
	// OIH's secret-service sends secrets.*; herald's canonical name is
	// secret-service.*. A deployment can see both, so the story mixes them.
	if s.oihName() {
		s.emit(ServiceSecrets, "secrets.secret.created", map[string]any{"name": x.name})
		return
	}
	s.emit(ServiceSecrets, "secret-service.secret.created", s.enriched(map[string]any{"id": x.id, "name": x.name}, u))
}

func (s *Scenario) readSecret() {
	x := s.secrets[s.rng.IntN(len(s.secrets))]
	if s.oihName() {
		s.emit(ServiceSecrets, "secrets.token.get", map[string]any{"message": "requested RAW Token"})
		return
	}
	s.emit(ServiceSecrets, "secret-service.token.get", s.enriched(map[string]any{"id": x.id}, x.owner))
}

func (s *Scenario) deleteSecret() {
	x := s.secrets[s.rng.IntN(len(s.secrets))]
	s.secrets = remove(s.secrets, x)
	if s.oihName() {
		s.emit(ServiceSecrets, "secrets.secret.deleted", map[string]any{"id": x.id})
		return
	}
	s.emit(ServiceSecrets, "secret-service.secret.deleted", s.enriched(map[string]any{"id": x.id}, x.owner))
}

// --- meta-data-repository ---------------------------------------------

func (s *Scenario) createDomain() {
	u := s.pickUser()
	d := &domain{id: s.objectID(), tenant: u.tenant, owner: u, name: domainNames[s.rng.IntN(len(domainNames))]}
	s.domains = append(s.domains, d)
	// OIH never publishes metadata.domain.created (oih-events §1c); it is
	// the seed's canonical event.
	if s.opts.OIHOnly {
		return
	}
	s.emit(ServiceMetadata, "metadata.domain.created", s.enriched(map[string]any{"id": d.id, "name": d.name}, u))
}

func (s *Scenario) createSchema() {
	d := s.domains[s.rng.IntN(len(s.domains))]
	name := schemaNames[s.rng.IntN(len(schemaNames))]
	x := &schema{
		id:     s.objectID(),
		domain: d,
		uri:    fmt.Sprintf("https://metadata.example.com/api/v1/domains/%s/schemas/%s-%d", d.id, name, len(d.schemas)+1),
	}
	d.schemas = append(d.schemas, x.uri)
	s.schemas = append(s.schemas, x)
	s.emit(ServiceMetadata, "metadata.schema.created", s.enrichedIn(map[string]any{"id": x.id}, d))
}

func (s *Scenario) modifySchema() {
	x := s.schemas[s.rng.IntN(len(s.schemas))]
	s.emit(ServiceMetadata, "metadata.schema.modified", s.enrichedIn(map[string]any{"id": x.id}, x.domain))
}

func (s *Scenario) deleteSchema() {
	x := s.schemas[s.rng.IntN(len(s.schemas))]
	s.schemas = remove(s.schemas, x)
	x.domain.schemas = filter(x.domain.schemas, func(uri string) bool { return uri != x.uri })
	// metadata.schema.deleted carries the schema's URI under "schema".
	s.emit(ServiceMetadata, "metadata.schema.deleted", s.enrichedIn(map[string]any{"schema": x.uri}, x.domain))
}

// --- flow-repository and component-orchestrator -----------------------

func (s *Scenario) createFlow() {
	u := s.pickUser()
	f := &flow{
		id:     s.objectID(),
		tenant: u.tenant.id,
		owner:  u,
		status: flowInactive,
	}
	n := 2 + s.rng.IntN(2)
	var names []string
	for i := range n {
		c := s.components[s.rng.IntN(len(s.components))]
		nd := node{
			id:          fmt.Sprintf("step_%d", i+1),
			componentID: c.id,
			function:    c.functions[s.rng.IntN(len(c.functions))],
			name:        c.name,
		}
		if x := s.secretOf(u); x != nil && i == 0 {
			nd.credentialsID = x.id
		}
		f.nodes = append(f.nodes, nd)
		names = append(names, c.name)
	}
	f.name = flowVerbs[s.rng.IntN(len(flowVerbs))] + " " + strings.Join(names[:2], " to ")
	f.description = "Synchronises " + strings.Join(names, ", ")
	if s.rng.IntN(3) == 0 {
		f.cron = crons[s.rng.IntN(len(crons))]
	}
	f.createdAt = s.timestamp()
	f.updatedAt = f.createdAt
	s.flows = append(s.flows, f)
	s.flowsIn[flowInactive]++
	s.emit(ServiceFlowRepo, "flowrepo.flow.created", f.ref(u.id))
}

func (s *Scenario) modifyFlow() {
	f := s.pickFlow(flowInactive)
	f.updatedAt = s.timestamp()
	s.emit(ServiceFlowRepo, "flowrepo.flow.modified", f.ref(s.actor(f)))
}

func (s *Scenario) deleteFlow() {
	f := s.pickFlow(flowInactive)
	s.flows = remove(s.flows, f)
	s.flowsIn[flowInactive]--
	s.emit(ServiceFlowRepo, "flowrepo.flow.deleted", f.ref(s.actor(f)))
}

// startFlow runs oih-events §5.1: flow-repository sets the flow starting
// and announces it; some steps later the orchestrator has deployed it,
// fetched its IAM token and publishes flow.started. One start in twelve
// fails instead (§5.2): component.failed and flow.failed, then the stop
// chain.
func (s *Scenario) startFlow() {
	f := s.pickFlow(flowInactive)
	by := s.actor(f)
	s.setStatus(f, flowStarting)
	f.updatedAt = s.timestamp()
	if !s.opts.OIHOnly {
		s.emit(ServiceFlowRepo, "flowrepo.flow.starting", f.ref(by))
	}
	doc := f.document(flowStarting)
	doc.StartedBy = by
	s.emit(ServiceFlowRepo, "flow.starting", doc)

	delay := 2 + s.rng.IntN(6)
	if s.rng.IntN(12) == 0 {
		bad := f.nodes[s.rng.IntN(len(f.nodes))].componentID
		s.later(delay, ServiceOrchestrator, "component.failed", map[string]any{"id": bad}, nil)
		s.later(delay, ServiceOrchestrator, "flow.failed", map[string]any{"id": f.id}, func() {
			// flow-repository answers flow.failed by stopping the flow.
			s.stop(f, 1, "")
		})
		return
	}
	f.token = s.objectID()
	s.later(delay, ServiceIAM, "iam.token.created", map[string]any{"id": f.token}, nil)
	started := s.enrichedFlow(map[string]any{"id": f.id}, f, by)
	s.later(delay, ServiceOrchestrator, "flow.started", started, func() { s.setStatus(f, flowActive) })
}

func (s *Scenario) stopFlow() {
	f := s.pickFlow(flowActive)
	s.stop(f, 0, s.actor(f))
}

// stop runs oih-events §5.3 from delay steps on: flow-repository
// announces the stop; the orchestrator tears the flow down, deletes its IAM
// token and publishes flow.stopped. by is the user who asked, "" when
// flow-repository stops the flow on its own (an orphan, a failed start):
// then only OIH's flow.stopping is published, as OIH does. The flow counts
// as stopping from now, so nothing else picks it meanwhile.
func (s *Scenario) stop(f *flow, delay int, by string) {
	s.setStatus(f, flowStopping)
	f.updatedAt = s.timestamp()
	if by != "" && !s.opts.OIHOnly {
		s.later(delay, ServiceFlowRepo, "flowrepo.flow.stopping", f.ref(by), nil)
	}
	s.later(delay, ServiceFlowRepo, "flow.stopping", f.document(flowStopping), nil)

	after := delay + 2 + s.rng.IntN(5)
	if f.token != "" {
		s.later(after, ServiceIAM, "iam.token.deleted", map[string]any{"id": f.token}, nil)
	}
	stopped := s.enrichedFlow(map[string]any{"id": f.id}, f, by)
	s.later(after, ServiceOrchestrator, "flow.stopped", stopped, func() {
		f.token = ""
		s.setStatus(f, flowInactive)
		if f.owner == nil {
			// Nobody can touch an owner-less flow again.
			s.flows = remove(s.flows, f)
			s.flowsIn[flowInactive]--
		}
	})
}

func (s *Scenario) setStatus(f *flow, status string) {
	if f.status == status {
		return
	}
	busy := func(st string) bool { return st == flowStarting || st == flowStopping }
	if f.owner != nil {
		if busy(f.status) {
			f.owner.busy--
		}
		if busy(status) {
			f.owner.busy++
		}
	}
	s.flowsIn[f.status]--
	s.flowsIn[status]++
	f.status = status
}

// ref is the payload of flowrepo.flow.* events: {tenant, user, flowId}.
func (f *flow) ref(user string) map[string]any {
	return map[string]any{"tenant": f.tenant, "user": user, "flowId": f.id}
}

// flowDoc is the whole flow document flow-repository publishes as
// flow.starting and flow.stopping (oih-events §1d).
type flowDoc struct {
	ID           string         `json:"id"`
	Name         string         `json:"name"`
	Description  string         `json:"description"`
	Graph        flowGraph      `json:"graph"`
	Type         string         `json:"type"`
	Tenant       string         `json:"tenant,omitempty"`
	Owners       []flowOwner    `json:"owners"`
	Status       string         `json:"status"`
	Cron         string         `json:"cron,omitempty"`
	FlowSettings map[string]any `json:"flowSettings"`
	CreatedAt    string         `json:"createdAt"`
	UpdatedAt    string         `json:"updatedAt"`
	StartedBy    string         `json:"startedBy,omitempty"`
}

type flowGraph struct {
	Nodes []flowNode `json:"nodes"`
	Edges []flowEdge `json:"edges"`
}

type flowNode struct {
	ID            string         `json:"id"`
	ComponentID   string         `json:"componentId"`
	Function      string         `json:"function"`
	Name          string         `json:"name"`
	CredentialsID string         `json:"credentials_id,omitempty"`
	Description   string         `json:"description"`
	Fields        map[string]any `json:"fields"`
	NodeSettings  map[string]any `json:"nodeSettings"`
}

type flowEdge struct {
	ID     string         `json:"id"`
	Config map[string]any `json:"config"`
	Source string         `json:"source"`
	Target string         `json:"target"`
}

type flowOwner struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

func (f *flow) document(status string) flowDoc {
	d := flowDoc{
		ID: f.id, Name: f.name, Description: f.description, Type: "ordinary",
		Tenant: f.tenant, Owners: []flowOwner{}, Status: status, Cron: f.cron,
		FlowSettings: map[string]any{}, CreatedAt: f.createdAt, UpdatedAt: f.updatedAt,
	}
	if f.owner != nil {
		d.Owners = append(d.Owners, flowOwner{ID: f.owner.id, Type: "user"})
	}
	for i, n := range f.nodes {
		d.Graph.Nodes = append(d.Graph.Nodes, flowNode{
			ID: n.id, ComponentID: n.componentID, Function: n.function, Name: n.name,
			CredentialsID: n.credentialsID, Description: n.function + " with " + n.name,
			Fields: map[string]any{}, NodeSettings: map[string]any{},
		})
		if i > 0 {
			prev := f.nodes[i-1]
			d.Graph.Edges = append(d.Graph.Edges, flowEdge{
				ID:     fmt.Sprintf("%s:%s", prev.id, n.id),
				Config: map[string]any{"mapper": map[string]any{}},
				Source: prev.id, Target: n.id,
			})
		}
	}
	return d
}

// --- helpers -----------------------------------------------------------

// enrich adds user and tenant to a canonical event's payload unless the
// scenario publishes OIH's exact payloads. Empty values are left out.
func (s *Scenario) enrich(p map[string]any, userID, tenantID string) {
	if s.opts.OIHOnly {
		return
	}
	if _, ok := p["user"]; !ok && userID != "" {
		p["user"] = userID
	}
	if _, ok := p["tenant"]; !ok && tenantID != "" {
		p["tenant"] = tenantID
	}
}

func (s *Scenario) enriched(p map[string]any, u *user) map[string]any {
	if u != nil {
		s.enrich(p, u.id, u.tenant.id)
	}
	return p
}

func (s *Scenario) enrichedIn(p map[string]any, d *domain) map[string]any {
	owner := ""
	if d.owner != nil {
		owner = d.owner.id
	}
	s.enrich(p, owner, d.tenant.id)
	return p
}

func (s *Scenario) enrichedFlow(p map[string]any, f *flow, by string) map[string]any {
	s.enrich(p, by, f.tenant)
	return p
}

// actor is who acts on a flow: its owner, else an admin of its tenant,
// else "".
func (s *Scenario) actor(f *flow) string {
	if f.owner != nil {
		return f.owner.id
	}
	for _, t := range s.tenants {
		if t.id == f.tenant && len(t.users) > 0 {
			return t.users[0].id
		}
	}
	return ""
}

// oihName reports whether this event goes out under the name OIH's
// service really uses rather than herald's canonical one: always when the
// scenario is OIH-only, else every other time.
func (s *Scenario) oihName() bool { return s.opts.OIHOnly || s.rng.IntN(2) == 0 }

func (s *Scenario) pickUser() *user { return s.users[s.rng.IntN(len(s.users))] }

// pickFlow returns a random flow with status (the caller checked one
// exists).
func (s *Scenario) pickFlow(status string) *flow {
	n := s.rng.IntN(s.flowsIn[status])
	for _, f := range s.flows {
		if f.status == status {
			if n == 0 {
				return f
			}
			n--
		}
	}
	panic("simulate: flow count out of step with flows")
}

// deletableUser returns a random user none of whose flows is starting or
// stopping, or nil.
func (s *Scenario) deletableUser() *user {
	start := s.rng.IntN(len(s.users) + 1)
	for i := range s.users {
		u := s.users[(start+i)%len(s.users)]
		if u.busy == 0 && u.tenant.admin != u.id {
			return u
		}
	}
	return nil
}

func (s *Scenario) secretOf(u *user) *secret {
	for _, x := range s.secrets {
		if x.owner == u {
			return x
		}
	}
	return nil
}

func (s *Scenario) dropTokens(u *user) {
	s.tokens = filter(s.tokens, func(t token) bool { return t.owner != u })
}

// objectID returns a MongoDB-style id: 24 hex digits.
func (s *Scenario) objectID() string {
	const hex = "0123456789abcdef"
	var b [24]byte
	a, c := s.rng.Uint64(), s.rng.Uint32()
	for i := range 16 {
		b[i] = hex[a>>(4*i)&0xf]
	}
	for i := range 8 {
		b[16+i] = hex[c>>(4*i)&0xf]
	}
	return string(b[:])
}

func (s *Scenario) timestamp() string {
	return s.opts.Now().UTC().Format("2006-01-02T15:04:05.000Z")
}

func remove[T comparable](xs []T, x T) []T {
	for i, y := range xs {
		if y == x {
			return append(xs[:i], xs[i+1:]...)
		}
	}
	return xs
}

func filter[T any](xs []T, keep func(T) bool) []T {
	out := xs[:0]
	for _, x := range xs {
		if keep(x) {
			out = append(out, x)
		}
	}
	clear(xs[len(out):])
	return out
}

func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-':
			b.WriteByte('-')
		}
	}
	return b.String()
}
