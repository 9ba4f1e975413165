// pair_style regnn: a regnn-ff model exported with `regnn export --domain` as a LAMMPS pair style.
//
// Each MPI rank hands the model its local atoms, its ghost atoms and a full neighbour list that
// includes ghost-ghost pairs; the model returns the energy of the local atoms, forces on local and
// ghost atoms (ghost forces go back to their owners by reverse communication, so newton pair must
// be on), the virial and, for models with an electric-field input, the dipole of the local atoms.
// The applied field is read every step from equal-style variables, so it may depend on time.

#ifndef LMP_PAIR_REGNN_H
#define LMP_PAIR_REGNN_H

#include "pair.h"

#include <torch/script.h>

#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairREGNN : public Pair {
 public:
  PairREGNN(class LAMMPS *);
  ~PairREGNN() override;
  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  void *extract(const char *, int &) override;

 private:
  void allocate();
  void read_field(double *) const;
  void evaluate(const std::vector<int> &atoms, int nowned);

  torch::jit::Module model;
  bool model_loaded = false;
  torch::ScalarType dtype = torch::kFloat64;
  std::vector<std::string> species;    // the model's species, in its index order
  std::vector<int64_t> type2species;   // LAMMPS type (1-based) -> model species index
  double r_max = 0.0;                  // Å, the model's neighbour cutoff
  double ghost_cutoff = 0.0;           // Å, the receptive field ((num_layers - 1) r_max + last_r_max): ghosts for exact local energies
  std::string field_irreps;            // e.g. "1x1o" (E, V/Å); empty: no field input
  int field_dim = 0;                   // size of the model's field input
  bool has_dipole = false;             // the model has an E-field input, so a dipole output

  // `field` keyword: one entry per field component, a number or an equal-style variable v_name
  std::vector<std::string> field_args;
  std::vector<int> field_vars;         // variable index, or -1 for a constant
  std::vector<double> field_values;    // the constants
  std::vector<double> field;           // this step's field
  int chunk_atoms = 0;                 // at most this many local atoms per model call (0: all)
  double dipole[3] = {0.0, 0.0, 0.0};  // e·Å, this rank's local atoms (summed by compute pair)
};

}    // namespace LAMMPS_NS

#endif
