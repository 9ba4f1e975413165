// pair_style regnn: see pair_regnn.h and the README's "LAMMPS" section.

#include "pair_regnn.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "input.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"
#include "variable.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

using namespace LAMMPS_NS;

namespace {

// torch's messages carry a C++ backtrace after the first line; a LAMMPS error is one line.
std::string first_line(const std::string &message)
{
  auto end = message.find('\n');
  return message.substr(0, end);
}

// Smallest and largest coordinates (Å) of the atoms `atoms` (at least one).
void bounding_box(double **x, const std::vector<int> &atoms, double lo[3], double hi[3])
{
  for (int k = 0; k < 3; k++) lo[k] = hi[k] = x[atoms[0]][k];
  for (int i : atoms)
    for (int k = 0; k < 3; k++) {
      lo[k] = std::min(lo[k], x[i][k]);
      hi[k] = std::max(hi[k], x[i][k]);
    }
}

}    // namespace

PairREGNN::PairREGNN(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  ghostneigh = 1;                  // message passing needs the neighbours of ghost atoms too
  no_virial_fdotr_compute = 1;     // the model returns the virial of its local energy itself
  centroidstressflag = CENTROID_NOTAVAIL;
  nextra = 3;                      // the dipole, read with `compute pair regnn` (c_ID[1..3])
  pvector = new double[nextra];
  for (int k = 0; k < nextra; k++) pvector[k] = 0.0;
}

PairREGNN::~PairREGNN()
{
  if (copymode) return;
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
    memory->destroy(cutghost);
  }
}

void PairREGNN::allocate()
{
  allocated = 1;
  int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  memory->create(cutghost, n, n, "pair:cutghost");    // read by Neighbor for ghost neighbour lists
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
}

// pair_style regnn [chunk N] [field F1 F2 ...]: each Fi a number or v_name of an equal-style
// variable, in the model's field units (V/Å for an electric field, T for a magnetic field); chunk:
// evaluate at most N local atoms per model call (0, the default: all at once).
void PairREGNN::settings(int narg, char **arg)
{
  field_args.clear();
  chunk_atoms = 0;
  int iarg = 0;
  while (iarg < narg) {
    if (strcmp(arg[iarg], "chunk") == 0) {
      if (iarg + 1 >= narg) error->all(FLERR, "pair_style regnn: 'chunk' needs a number of atoms");
      chunk_atoms = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
      if (chunk_atoms < 0) error->all(FLERR, "pair_style regnn: 'chunk' must be >= 0 atoms, got {}", chunk_atoms);
      iarg += 2;
    } else if (strcmp(arg[iarg], "field") == 0) {
      iarg++;
      while (iarg < narg && strcmp(arg[iarg], "chunk") != 0) field_args.emplace_back(arg[iarg++]);
      if (field_args.empty())
        error->all(FLERR, "pair_style regnn: 'field' needs one value or v_name per field component");
    } else {
      error->all(FLERR, "pair_style regnn: unknown keyword '{}' (expected: chunk N, field F1 F2 ...)", arg[iarg]);
    }
  }
}

// pair_coeff * * model.pt E1 E2 ...: the exported file and one element per LAMMPS atom type.
void PairREGNN::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  if (narg != 3 + ntypes)
    error->all(FLERR, "pair_coeff regnn: expected '* * model.pt' and {} element names (one per atom type), got {} arguments",
               ntypes, narg);
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff regnn: the types must be '* *' (one model for all pairs)");

  const std::string path = arg[2];
  try {
    model = torch::jit::load(path, torch::kCPU);
  } catch (const c10::Error &err) {
    error->all(FLERR, "pair_coeff regnn: cannot load '{}' as a TorchScript model: {}", path,
               first_line(err.what()));
  }
  if (!model.hasattr("ghost_cutoff") || !model.hasattr("species_names"))
    error->all(FLERR, "pair_coeff regnn: '{}' is not a domain model; export it with 'regnn export CKPT -o {} --domain'",
               path, path);
  model.eval();
  species.clear();
  for (const auto &name : model.attr("species_names").toListRef()) species.push_back(name.toStringRef());
  r_max = model.attr("r_max").toDouble();
  ghost_cutoff = model.attr("ghost_cutoff").toDouble();
  field_irreps = model.attr("field_irreps").toStringRef();
  field_dim = static_cast<int>(model.attr("field_dim").toInt());
  has_dipole = model.attr("dipole_start").toInt() >= 0;
  for (const auto &parameter : model.parameters()) {
    dtype = parameter.scalar_type();
    break;
  }
  model_loaded = true;

  type2species.assign(ntypes + 1, -1);
  for (int type = 1; type <= ntypes; type++) {
    const std::string element = arg[2 + type];
    for (size_t s = 0; s < species.size(); s++)
      if (species[s] == element) type2species[type] = static_cast<int64_t>(s);
    if (type2species[type] < 0) {
      std::string known;
      for (const auto &s : species) known += (known.empty() ? "" : " ") + s;
      error->all(FLERR, "pair_coeff regnn: element '{}' (atom type {}) is not one of the model's species: {}",
                 element, type, known);
    }
  }
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = 1;
  if (!has_dipole) nextra = 0;    // no dipole to report: c_ID[1] is then refused by LAMMPS
}

void PairREGNN::init_style()
{
  if (!model_loaded) error->all(FLERR, "pair regnn: no model; use 'pair_coeff * * model.pt E1 E2 ...'");
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair regnn: needs 'units metal' (Å, eV, ps; the field in V/Å), not '{}'",
               update->unit_style);
  if (force->newton_pair == 0)
    error->all(FLERR, "pair regnn: needs 'newton on' (forces on ghost atoms go back to their owners)");

  const int nfield = static_cast<int>(field_args.size());
  if (nfield > 0 && field_dim == 0)
    error->all(FLERR, "pair regnn: the model has no field input, but pair_style gives 'field'; remove it or use a model trained with a field");
  if (nfield > 0 && nfield != field_dim)
    error->all(FLERR, "pair regnn: the model's field input '{}' has {} components, 'field' gives {}",
               field_irreps, field_dim, nfield);
  field_vars.assign(nfield, -1);
  field_values.assign(nfield, 0.0);
  for (int k = 0; k < nfield; k++) {
    const std::string &entry = field_args[k];
    if (utils::strmatch(entry, "^v_")) {
      int ivar = input->variable->find(entry.substr(2).c_str());
      if (ivar < 0) error->all(FLERR, "pair regnn: field variable '{}' does not exist", entry.substr(2));
      if (!input->variable->equalstyle(ivar))
        error->all(FLERR, "pair regnn: field variable '{}' is not equal-style", entry.substr(2));
      field_vars[k] = ivar;
    } else {
      field_values[k] = utils::numeric(FLERR, entry, false, lmp);
    }
  }

  // A local atom's energy depends on atoms up to the receptive field away; atoms move up to the skin
  // between re-neighbourings, so the ghost shell must reach that far plus the skin.
  const double needed = ghost_cutoff + neighbor->skin;
  if (comm->cutghostuser < needed - 1e-10 && ghost_cutoff > r_max)
    error->all(FLERR, "pair regnn: the model needs ghost atoms to {:.6g} Å (receptive field {:.6g} + skin {:.6g}); add 'comm_modify cutoff {:.6g}'",
               needed, ghost_cutoff, neighbor->skin, needed);

  neighbor->add_request(this, NeighConst::REQ_FULL | NeighConst::REQ_GHOST);
  // Threads per rank follow LAMMPS's own setting (OMP_NUM_THREADS or 'package omp'), default 1.
  at::set_num_threads(std::max(1, comm->nthreads));
}

double PairREGNN::init_one(int i, int j)
{
  cutghost[i][j] = cutghost[j][i] = r_max;
  return r_max;
}

void PairREGNN::read_field(double *values) const
{
  for (size_t k = 0; k < field_vars.size(); k++)
    values[k] = field_vars[k] >= 0 ? input->variable->compute_equal(field_vars[k]) : field_values[k];
}

void PairREGNN::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  if (eflag_atom || vflag_atom)
    error->all(FLERR, "pair regnn: per-atom energies and virials are not available (only the totals)");

  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  field.resize(field_vars.size());
  read_field(field.data());
  for (int k = 0; k < 3; k++) dipole[k] = 0.0;

  if (chunk_atoms <= 0 || nlocal <= chunk_atoms) {
    std::vector<int> atoms(nall);
    std::iota(atoms.begin(), atoms.end(), 0);
    if (nlocal > 0) evaluate(atoms, nlocal);    // an empty domain's local energy is zero
  } else {
    // Cells of a grid over the local atoms, each evaluated with every atom within the ghost cutoff
    // of its bounding box: memory bounded by a cell and its shell, as with more MPI ranks.
    double **x = atom->x;
    std::vector<int> local(nlocal);
    std::iota(local.begin(), local.end(), 0);
    double lo[3], hi[3];
    bounding_box(x, local, lo, hi);
    // cells of about equal sides, as many as needed for chunk_atoms each at uniform density
    const int wanted = (nlocal + chunk_atoms - 1) / chunk_atoms;
    double volume = 1.0;
    for (int k = 0; k < 3; k++) volume *= std::max(hi[k] - lo[k], 1.0);
    const double side = std::cbrt(volume / wanted);
    int count[3];
    for (int k = 0; k < 3; k++)
      count[k] = std::max(1, static_cast<int>(std::ceil(std::max(hi[k] - lo[k], 1.0) / side - 1e-9)));
    std::vector<std::vector<int>> cells(count[0] * count[1] * count[2]);
    for (int i = 0; i < nlocal; i++) {
      int index = 0;
      for (int k = 0; k < 3; k++) {
        const double width = std::max(hi[k] - lo[k], 1e-12);
        const int c = std::min(count[k] - 1, static_cast<int>((x[i][k] - lo[k]) / width * count[k]));
        index = index * count[k] + c;
      }
      cells[index].push_back(i);
    }
    for (auto &cell : cells) {
      if (cell.empty()) continue;
      double clo[3], chi[3];
      bounding_box(x, cell, clo, chi);
      std::vector<char> member(nall, 0);
      for (int i : cell) member[i] = 1;
      std::vector<int> atoms(cell);
      for (int i = 0; i < nall; i++) {
        if (member[i]) continue;
        bool inside = true;
        for (int k = 0; k < 3 && inside; k++)
          inside = x[i][k] >= clo[k] - ghost_cutoff && x[i][k] <= chi[k] + ghost_cutoff;
        if (inside) atoms.push_back(i);
      }
      evaluate(atoms, static_cast<int>(cell.size()));
    }
  }
  for (int k = 0; k < nextra; k++) pvector[k] = dipole[k];
}

// One model call on `atoms` (indices into LAMMPS's local + ghost arrays, the first `nowned` of them
// local atoms whose energy is wanted); adds forces, energy, virial and dipole.
void PairREGNN::evaluate(const std::vector<int> &atoms, int nowned)
{
  double **x = atom->x;
  double **f = atom->f;
  const int *type = atom->type;
  const int nall = atom->nlocal + atom->nghost;
  const int64_t n = static_cast<int64_t>(atoms.size());

  std::vector<int> position_of(nall, -1);
  auto positions = torch::empty({n, 3}, torch::kFloat64);
  auto species_index = torch::empty({n}, torch::kInt64);
  auto pos = positions.accessor<double, 2>();
  auto spec = species_index.accessor<int64_t, 1>();
  for (int64_t a = 0; a < n; a++) {
    const int i = atoms[a];
    position_of[i] = static_cast<int>(a);
    for (int k = 0; k < 3; k++) pos[a][k] = x[i][k];
    spec[a] = type2species[type[i]];
  }

  // The neighbour list is built with the skin; the model wants pairs within r_max, both directions.
  const double cutsq_model = r_max * r_max;
  std::vector<int64_t> senders, receivers;
  senders.reserve(static_cast<size_t>(n) * 32);
  receivers.reserve(senders.capacity());
  for (int64_t a = 0; a < n; a++) {
    const int i = atoms[a];
    const int *jlist = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      if (position_of[j] < 0) continue;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      if (dx * dx + dy * dy + dz * dz < cutsq_model) {
        senders.push_back(a);
        receivers.push_back(position_of[j]);
      }
    }
  }
  const int64_t nedges = static_cast<int64_t>(senders.size());
  auto edge_index = torch::empty({2, nedges}, torch::kInt64);
  if (nedges > 0) {
    std::memcpy(edge_index[0].data_ptr<int64_t>(), senders.data(), nedges * sizeof(int64_t));
    std::memcpy(edge_index[1].data_ptr<int64_t>(), receivers.data(), nedges * sizeof(int64_t));
  }

  torch::jit::IValue field_input;    // None: the model's default (zero field)
  if (!field.empty())
    field_input = torch::from_blob(field.data(), {static_cast<int64_t>(field.size())}, torch::kFloat64).to(dtype);

  std::vector<torch::jit::IValue> inputs{positions.to(dtype), species_index, edge_index,
                                         static_cast<int64_t>(nowned), field_input};
  c10::IValue result;
  try {
    result = model.forward(inputs);
  } catch (const std::exception &err) {
    error->one(FLERR, "pair regnn: the model failed on {} local and {} surrounding atoms: {}", nowned,
               n - nowned, first_line(err.what()));
  }

  auto out = result.toGenericDict();
  auto forces = out.at("forces").toTensor().to(torch::kFloat64).contiguous();
  auto fa = forces.accessor<double, 2>();
  for (int64_t a = 0; a < n; a++)
    for (int k = 0; k < 3; k++) f[atoms[a]][k] += fa[a][k];

  if (eflag_global) eng_vdwl += out.at("energy").toTensor().to(torch::kFloat64).item<double>();
  if (vflag_global) {
    auto w = out.at("virial").toTensor().to(torch::kFloat64).contiguous();
    auto wa = w.accessor<double, 1>();
    for (int k = 0; k < 6; k++) virial[k] += wa[k];
  }
  if (has_dipole && out.contains("dipole")) {
    auto d = out.at("dipole").toTensor().to(torch::kFloat64).contiguous();
    auto da = d.accessor<double, 1>();
    for (int k = 0; k < 3; k++) dipole[k] += da[k];
  }
}

// extract("dipole", dim): this rank's dipole of its local atoms (e·Å); extract("r_max", dim): Å.
void *PairREGNN::extract(const char *name, int &dim)
{
  dim = 1;
  if (strcmp(name, "dipole") == 0) return (void *) dipole;
  if (strcmp(name, "r_max") == 0) {
    dim = 0;
    return (void *) &r_max;
  }
  return nullptr;
}

// Entry point for regnnplugin.so, which loads this library with its own symbols first (see there).
extern "C" Pair *regnn_create_pair(LAMMPS *lmp)
{
  return new PairREGNN(lmp);
}
