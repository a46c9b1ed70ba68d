package simulate

// The vocabulary the story is told in. Values only, never changed.

var companies = []string{
	"Acme Logistics", "Globex Retail", "Initech Consulting", "Umbrella Health",
	"Stark Manufacturing", "Wayne Foods", "Hooli Media", "Soylent Energy",
}

var firstNames = []string{
	"Jane", "John", "Amira", "Lukas", "Mei", "Oluwaseun", "Sofia", "Mateo",
	"Hannah", "Ravi", "Elena", "Tomasz", "Aiko", "Kwame", "Ingrid", "Diego",
}

var lastNames = []string{
	"Doe", "Schmidt", "Haddad", "Novak", "Chen", "Adeyemi", "Rossi", "Garcia",
	"Meyer", "Patel", "Ivanova", "Kowalski", "Tanaka", "Mensah", "Larsen", "Silva",
}

var secretNames = []string{
	"Salesforce OAuth", "Google Contacts OAuth", "HubSpot API key",
	"Snazzy Contacts key", "Shopify token", "SAP Business One login",
	"Microsoft Graph OAuth", "Wice CRM key",
}

var domainNames = []string{"Addresses", "Products", "Orders", "Documents", "Tasks"}

var schemaNames = []string{"person", "organization", "product", "order", "invoice", "task"}

var componentNames = []struct {
	name      string
	functions []string
}{
	{"salesforce-adapter", []string{"getPersons", "upsertPerson", "getOrganizations"}},
	{"hubspot-adapter", []string{"getContacts", "upsertContact"}},
	{"google-contacts-adapter", []string{"getPersons", "upsertPerson"}},
	{"snazzy-contacts-adapter", []string{"getPersonsPolling", "upsertPerson"}},
	{"code-component", []string{"execute"}},
	{"oih-transformer", []string{"transformToOih", "transformFromOih"}},
	{"shopify-adapter", []string{"getOrders", "getProducts"}},
}

var flowVerbs = []string{"Sync", "Mirror", "Push", "Copy"}

var crons = []string{"*/5 * * * *", "0 * * * *", "0 6 * * 1-5"}
