package nft

import (
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netns"
)

var (
	families = map[Family]nftables.TableFamily{IPv4: nftables.TableFamilyIPv4, Inet: nftables.TableFamilyINet}
	hooks    = map[Hook]nftables.ChainHook{
		Prerouting: *nftables.ChainHookPrerouting, Input: *nftables.ChainHookInput, Forward: *nftables.ChainHookForward,
		Output: *nftables.ChainHookOutput, Postrouting: *nftables.ChainHookPostrouting,
	}
)

// maxText bounds the rule text kept in a rule's comment (the kernel keeps at most 256 bytes of user data).
const maxText = 250

// conn opens nf_tables in ns; netns.None() means the calling thread's namespace (lock the thread first).
func conn(ns netns.NsHandle) (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if ns.IsOpen() {
		opts = append(opts, nftables.WithNetNSFd(int(ns)))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("opening nf_tables: %w", err)
	}
	return c, nil
}

func kernelTable(t *Table) (*nftables.Table, error) {
	f, ok := families[t.Family]
	if !ok {
		return nil, fmt.Errorf("table %s: unsupported family %q", t.Name, t.Family)
	}
	if t.Name == "" {
		return nil, fmt.Errorf("table without a name")
	}
	return &nftables.Table{Name: t.Name, Family: f}, nil
}

// Replace installs tables in ns (netns.None(): the calling thread's namespace), each replacing the table
// of the same family and name, all in one netlink batch. The kernel applies a batch atomically: packets
// see either the old rules or the new ones, and if anything is rejected nothing changes. Tables that are
// not named here are never touched, so meshlab's rules live next to anyone else's.
func Replace(ns netns.NsHandle, tables ...*Table) error { return Sync(ns, nil, tables) }

// Sync is Replace that also deletes, in the same batch, the tables of owned (by family and name) that are
// not in tables: a caller owning several tables converges to the set it wants now.
func Sync(ns netns.NsHandle, owned, tables []*Table) error {
	c, err := conn(ns)
	if err != nil {
		return err
	}
	for _, o := range owned {
		if !slices.ContainsFunc(tables, func(t *Table) bool { return t.Family == o.Family && t.Name == o.Name }) {
			if err := del(c, o); err != nil {
				return err
			}
		}
	}
	for _, t := range tables {
		if err := add(c, t); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("installing nftables tables %s: %w", names(tables), err)
	}
	return nil
}

// add queues t on c: create the table if missing (so that deleting it cannot fail), delete it with all
// it holds, and create it again with its chains, then its rules.
func add(c *nftables.Conn, t *Table) error {
	kt, err := kernelTable(t)
	if err != nil {
		return err
	}
	c.AddTable(kt)
	c.DelTable(kt)
	c.AddTable(kt)
	kchains := map[string]*nftables.Chain{}
	for _, ch := range t.Chains {
		kc := &nftables.Chain{Name: ch.Name, Table: kt}
		if ch.Base() {
			h, ok := hooks[ch.Hook]
			if !ok {
				return fmt.Errorf("chain %s: unknown hook %q", ch.Name, ch.Hook)
			}
			kc.Hooknum, kc.Type = &h, nftables.ChainType(ch.Type)
			kc.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(ch.Priority))
		}
		if kchains[ch.Name] != nil {
			return fmt.Errorf("table %s: chain %s declared twice", t.Name, ch.Name)
		}
		kchains[ch.Name] = c.AddChain(kc)
	}
	comp := &compiler{table: kt, family: t.Family, addSet: c.AddSet}
	for _, ch := range t.Chains {
		for _, r := range ch.Rules {
			var exprs []expr.Any
			for _, e := range r {
				if v, ok := e.(Verdict); ok && v.Chain != "" && kchains[v.Chain] == nil {
					return fmt.Errorf("table %s chain %s: %q jumps to a chain that is not in the table", t.Name, ch.Name, r)
				}
				ke, err := e.compile(comp)
				if err != nil {
					return fmt.Errorf("table %s chain %s rule %q: %w", t.Name, ch.Name, r, err)
				}
				exprs = append(exprs, ke...)
			}
			txt := r.String()
			if len(txt) > maxText {
				txt = txt[:maxText]
			}
			c.AddRule(&nftables.Rule{Table: kt, Chain: kchains[ch.Name], Exprs: exprs,
				UserData: userdata.AppendString(nil, userdata.TypeComment, txt)})
		}
	}
	return nil
}

// Delete removes the tables of the given families and names from ns, in one batch; a table that is not
// there is not an error. Only Family and Name of each table are used.
func Delete(ns netns.NsHandle, tables ...*Table) error {
	c, err := conn(ns)
	if err != nil {
		return err
	}
	for _, t := range tables {
		if err := del(c, t); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("deleting nftables tables %s: %w", names(tables), err)
	}
	return nil
}

// List reads a table back from ns, or returns nil if there is none. Chains come with their hooks; each
// rule is shown by the text it was installed with (Replace keeps it in the rule's comment), so that
// List(...).String() equals the installed Table's String() exactly when the kernel holds that table.
func List(ns netns.NsHandle, family Family, name string) (*Table, error) {
	kt, err := kernelTable(&Table{Family: family, Name: name})
	if err != nil {
		return nil, err
	}
	c, err := conn(ns)
	if err != nil {
		return nil, err
	}
	ktables, err := c.ListTablesOfFamily(kt.Family)
	if err != nil {
		return nil, fmt.Errorf("listing nftables tables: %w", err)
	}
	found := false
	for _, t := range ktables {
		found = found || t.Name == name
	}
	if !found {
		return nil, nil
	}
	kchains, err := c.ListChainsOfTableFamily(kt.Family)
	if err != nil {
		return nil, fmt.Errorf("listing chains of %s %s: %w", family, name, err)
	}
	t := &Table{Family: family, Name: name}
	for _, kc := range kchains {
		if kc.Table.Name != name {
			continue
		}
		ch := &Chain{Name: kc.Name, Type: ChainType(kc.Type)}
		if kc.Hooknum != nil {
			for h, n := range hooks {
				if n == *kc.Hooknum {
					ch.Hook = h
				}
			}
			if kc.Priority != nil {
				ch.Priority = int(*kc.Priority)
			}
		}
		rules, err := c.GetRules(kt, kc)
		if err != nil {
			return nil, fmt.Errorf("listing rules of %s %s chain %s: %w", family, name, kc.Name, err)
		}
		for _, r := range rules {
			s, ok := userdata.GetString(r.UserData, userdata.TypeComment)
			if !ok {
				s = fmt.Sprintf("# rule handle %d (%d expressions, not written by meshlab)", r.Handle, len(r.Exprs))
			}
			ch.Rules = append(ch.Rules, Rule{text(s)})
		}
		t.Chains = append(t.Chains, ch)
	}
	return t, nil
}

// del queues the deletion of t on c; adding it first makes the deletion succeed when t is absent.
func del(c *nftables.Conn, t *Table) error {
	kt, err := kernelTable(t)
	if err != nil {
		return err
	}
	c.AddTable(kt)
	c.DelTable(kt)
	return nil
}

func names(tables []*Table) string {
	s := ""
	for i, t := range tables {
		if i > 0 {
			s += ", "
		}
		s += string(t.Family) + " " + t.Name
	}
	return s
}
