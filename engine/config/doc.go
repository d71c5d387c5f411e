// Package config reads unfurld's YAML configuration into typed structs and
// checks its structure, reporting every problem at once with its
// file:line:col and dotted path (STYLE.md rules 1 and 2).
//
// Load (or Parse, on bytes) runs these steps over a yaml.Node tree, so that
// positions survive every step:
//
//  1. parse the file with yaml.v3 (syntax errors carry the line yaml gives);
//  2. resolve `include:` entries of providers, from files or from the
//     built-in providers (LoadOptions.Builtins), and lay the variant an
//     entry asks for over the included file (variant.go);
//  3. expand ${NAME} and ${NAME:-default} in scalar values;
//  4. check every key against the yaml tags of the Go structs and decode
//     the values, recording the position of every path in Config.Positions;
//     a secret key k may instead be given as k_file, whose file is read
//     (secretfile.go), and where every secret came from is recorded in
//     Config.Sources;
//  5. apply defaults (Config.SetDefaults);
//  6. validate the structure: names, required fields, allowed values and the
//     production-mode rules of security.md (TH-13, TH-15, TH-19, TH-30,
//     TH-53), secrets written in the file among them.
//
// The package never opens sockets and reads no file besides the
// configuration, its includes and the secret files it names. Compiling regexes, templates and
// expressions is left to engine/provider and engine/mapping, which place
// their errors with Config.Positions.
package config
