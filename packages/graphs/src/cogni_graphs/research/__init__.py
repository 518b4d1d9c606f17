"""`research`: a tool loop over the bundled notes and a calculator."""
