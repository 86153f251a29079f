//go:build !linux

package confine

import "io/fs"

// RegularStats are the stats of every regular file beneath dir, by path
// relative to it ("bin/x"), walked through os.Root.
func RegularStats(dir string) (map[string]FileStat, error) {
	root, err := Open(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	out := map[string]FileStat{}
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[p] = statOf(p, fi)
		return nil
	})
	return out, err
}
