"""The vocabulary every layer shares: finding codes, the error taxonomy, endpoints, results and the evidence bundle's model. Imports nothing but itself."""
